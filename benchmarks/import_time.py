"""Import time of the code location: our part on top of `import dagster`.

Each repetition is a fresh interpreter that imports dagster, then `encord_assets.definitions`,
timing both, and reports its peak RSS; the modules our import pulls in beyond dagster's are
listed by their own import time (`python -X importtime`), largest first.

    uv run python benchmarks/import_time.py [--repeat 5]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

PROBE = """
import json, resource, sys, time
started = time.perf_counter()
import dagster
dagster_seconds = time.perf_counter() - started
before = set(sys.modules)
started = time.perf_counter()
import encord_assets.definitions
ours_seconds = time.perf_counter() - started
print(json.dumps({
    "dagster": dagster_seconds,
    "ours": ours_seconds,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "new_modules": sorted({name.split(".")[0] for name in set(sys.modules) - before} - set(sys.stdlib_module_names) - {"encord_assets"}),
}))
"""


def probe(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def heaviest_imports(env: dict, limit: int) -> list[tuple[float, str]]:
    """Packages imported by `encord_assets.definitions` (not already by dagster), by the sum of
    their modules' own import times."""
    code = "import dagster, sys; sys.stderr.write('---\\n'); import encord_assets.definitions"
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, check=True).stderr
    totals: dict[str, float] = {}
    for line in err.split("---\n", 1)[1].splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        package = name.strip().split(".")[0]
        totals[package] = totals.get(package, 0.0) + int(own) / 1e6
    return sorted(((seconds, name) for name, seconds in totals.items()), reverse=True)[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "ROOT_DATA_PATH": root}
        runs = [probe(env) for _ in range(args.repeat)]
        dagster_s = statistics.median(run["dagster"] for run in runs)
        ours_s = statistics.median(run["ours"] for run in runs)
        print(f"{'measure':<40} {'seconds':>8}")
        print(f"{'import dagster (baseline)':<40} {dagster_s:8.2f}")
        print(f"{'then import encord_assets.definitions':<40} {ours_s:8.2f}")
        print(f"{'ours / dagster':<40} {ours_s / dagster_s:8.2f}x")
        print(f"peak RSS after both: {statistics.median(run['rss_mb'] for run in runs):.0f} MB (median of {args.repeat})")
        print(f"third-party packages our import adds: {', '.join(runs[0]['new_modules'])}")
        print("packages by their modules' own import time (seconds, one run):")
        for seconds, name in heaviest_imports(env, 12):
            print(f"  {seconds:6.2f}  {name}")


if __name__ == "__main__":
    main()
