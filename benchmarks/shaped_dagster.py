"""A whole archive source at 100% through Dagster's run queue over a shaped link (default 200 Mbit/s,
20 ms round trip), against the guide's approach (download the whole archive, then extract) in the same run.

    uv run python benchmarks/shaped_dagster.py [--source coco|flickr30k] [--members 3000] [--noop 3]

The infos name every member of the source's archive (a 100% subset). The mirror's archive (and
COCO's single images) hold Pillow-made noise JPEGs of ~140 KB, stored, as image zips are. Ours:
`dagster dev` (webserver, daemon, code server) on
127.0.0.1 over a temporary DAGSTER_HOME with the project's dagster.yaml and pool limits, and one
run of the source's `fill_<source>` job per non-empty partition submitted through GraphQL, as the
UI's *Materialize* sends it; the runs wait in the instance's queue, the daemon launches them (one
process per run, at most the pool's limit at once) and each runs its partition and its checks.
Timed from the first submission until the last run succeeded. Then `--noop` re-runs of one
complete partition the same way (nothing to fetch), timed from submission to success and as
Dagster reports the run (RUN_START to RUN_SUCCESS).
The guide: one GET of the whole archive to disk, then zipfile extracts the needed members. Prints
seconds, MB sent by the mirror, requests, the read methods picked, the ratio guide / ours, and
where a run's time goes, from its event log.
"""

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import requests
from shaped_archives import SIDE, guide, noise_jpeg, run

from encord_assets.mirror.server import Link, Mirror
from encord_assets_tests.processes import DAGSTER, PATIENCE_SECONDS, free_port, responds, start, stop_group

SOURCES = {
    # asset, fetcher, file_id of member n, the archive's path on the mirror, its URL path
    "coco": ("image_coco", "coco", lambda n: str(n + 1), "coco/zips/train2017.zip", "/coco/zips/train2017.zip"),
    "flickr30k": (
        "image_flickr30k", "flickr30k", lambda n: str(1_000_000 + n),
        "hf/datasets/nlphuji/flickr30k/flickr30k-images.zip", "/datasets/nlphuji/flickr30k/resolve/main/flickr30k-images.zip",
    ),
}
SOURCE_DATASET = {"coco": "COCO", "flickr30k": "Flickr30k"}


def write_infos(infos: Path, source: str, ids: list[str]) -> None:
    path = infos / "e-mm1_1m" / "infos" / "image.csv"
    path.parent.mkdir(parents=True)
    lines = ["encord_image_id,source_dataset,dataset_license,file_id,file_name,save_folder"]
    lines += [f"{n + 1},{SOURCE_DATASET[source]},CC-BY-4.0,{i},{i}.jpg,e-mm1_1m_only" for n, i in enumerate(ids)]
    path.write_text("\n".join(lines) + "\n")


def realistic(content: Path) -> None:
    """Every JPEG the builders wrote (zip members and single files) becomes a ~140 KB noise JPEG."""
    rng = random.Random(0)
    for archive in content.rglob("*.zip"):
        rebuilt = archive.with_suffix(".tmp")
        with zipfile.ZipFile(archive) as old, zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_STORED) as new:
            for info in old.infolist():
                new.writestr(info.filename, noise_jpeg(rng) if info.filename.endswith(".jpg") else old.read(info))
        rebuilt.replace(archive)
    for image in content.rglob("*.jpg"):
        image.write_bytes(noise_jpeg(rng))


LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
WORKSPACE = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
DONE = ("SUCCESS", "FAILURE", "CANCELED")


class Dev:
    """`dagster dev` on 127.0.0.1 in its own process group; GraphQL as the UI sends it."""

    def __init__(self, folder: Path):
        self.port, self.log = free_port(), folder / "dagster_dev.log"
        command = [DAGSTER, "dev", "-m", "encord_assets.definitions", "-h", "127.0.0.1", "-p", str(self.port)]
        self.process = start(command, folder, self.log)  # with this process's environment
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "Dev":
        since = time.monotonic()
        while True:
            entries = self.query(WORKSPACE)["workspaceOrError"]["locationEntries"] if responds(f"{self.url}/server_info") else []
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                (self.location,) = [e["name"] for e in entries]
                return self
            assert time.monotonic() < since + PATIENCE_SECONDS and self.process.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        stop_group(self.process)

    def query(self, text: str, **variables) -> dict:
        reply = requests.post(f"{self.url}/graphql", json={"query": text, "variables": variables}, timeout=120)
        reply.raise_for_status()
        body = reply.json()
        assert "errors" not in body, body
        return body["data"]

    def launch(self, job: str, partition_key: str, assets: list[str] | None = None) -> str:
        selector = {"repositoryLocationName": self.location, "repositoryName": "__repository__", "jobName": job}
        if assets:
            selector["assetSelection"] = [{"path": [name]} for name in assets]
        tags = [{"key": "dagster/partition", "value": partition_key}]
        result = self.query(LAUNCH_RUN, params={"selector": selector, "executionMetadata": {"tags": tags}})["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]


def wait_for(instance, run_ids: list[str]) -> list:
    """The runs once every one has ended; each must have succeeded."""
    import dagster as dg

    since = time.monotonic()
    while True:
        runs = instance.get_runs(dg.RunsFilter(run_ids=run_ids))
        if len(runs) == len(run_ids) and all(r.status.value in DONE for r in runs):
            failed = [r.run_id for r in runs if r.status.value != "SUCCESS"]
            assert not failed, f"runs failed: {failed}"
            return runs
        assert time.monotonic() < since + 30 * PATIENCE_SECONDS, [r.status.value for r in runs]
        time.sleep(0.1)


def busy_cores(since: tuple[float, float] | None = None):
    """The machine's (busy, total) CPU seconds from /proc/stat; with `since`, the cores busy on average since."""
    ticks = [int(n) for n in open("/proc/stat").readline().split()[1:]]
    now = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))  # all but idle and iowait
    if since is None:
        return now
    return (now[0] - since[0]) / (now[1] - since[1]) * os.cpu_count()


PHASES = ("queued", "process start, code load", "asset step", "checks", "end")


def phases(instance, run_id: str, asset: str) -> dict[str, float]:
    """Seconds of one run's phases, from its event log: queued (submitted until the daemon launched it),
    process start and code load (until RUN_START), the asset's step, its check steps, the end."""
    at, steps = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        kind = event.event_type.name  # RUN_*, not the PIPELINE_* values it is stored as
        at.setdefault(kind, record.timestamp)
        if kind in ("STEP_START", "STEP_SUCCESS"):
            steps.setdefault(event.step_key, {})[kind] = record.timestamp
    asset_step = steps.pop(asset)
    check_end = max((s["STEP_SUCCESS"] for s in steps.values()), default=asset_step["STEP_SUCCESS"])
    return {
        "queued": at["RUN_STARTING"] - at["RUN_ENQUEUED"],
        "process start, code load": at["RUN_START"] - at["RUN_STARTING"],
        "asset step": asset_step["STEP_SUCCESS"] - asset_step["STEP_START"],
        "checks": check_end - asset_step["STEP_SUCCESS"],
        "end": at["RUN_SUCCESS"] - check_end,
        "before the asset step": asset_step["STEP_START"] - at["RUN_START"],
        "run": at["RUN_SUCCESS"] - at["RUN_START"],
    }


def breakdown(rows: list[dict[str, float]]) -> str:
    lines = ["| phase | median s | max s | sum over runs s |", "|---|---|---|---|"]
    for phase in (*PHASES[:2], "before the asset step", *PHASES[2:], "run"):
        values = [row[phase] for row in rows]
        lines.append(f"| {phase} | {statistics.median(values):.2f} | {max(values):.2f} | {sum(values):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", choices=sorted(SOURCES), default="coco")
    parser.add_argument("--members", type=int, default=3000)
    parser.add_argument("--mbit", type=float, default=200.0)
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    parser.add_argument("--noop", type=int, default=3, help="no-op re-runs of one complete partition")
    args = parser.parse_args()
    asset, fetcher, file_id, archive_path, archive_url = SOURCES[args.source]
    rate, rtt = args.mbit * 1e6 / 8, args.rtt_ms / 1000
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ids = [file_id(n) for n in range(args.members)]
        write_infos(tmp / "infos", args.source, ids)
        environment = {
            "ROOT_DATA_PATH": str(tmp / "root"), "ENCORD_INFOS_DIR": str(tmp / "infos"), "DAGSTER_HOME": str(tmp / "home"),
            "HF_HOME": str(tmp / "hf_home"), "ENCORD_RETRY_SENSOR": "false", "ENCORD_FILL_SENSOR": "false",
        }
        os.environ.update(environment)
        (tmp / "home").mkdir()
        # imported after the environment names ROOT and the infos
        import dagster as dg

        from encord_assets.demo import normalized_rows
        from encord_assets.infos.files import splits_for
        from encord_assets.mirror.build import attach
        from encord_assets.operations.instance import install_instance_yaml, set_pool_limits
        from encord_assets.sources.partitions import partitions_with_rows
        from encord_assets.sources.registry import upstream_emulation
        from encord_assets.store import default_store

        install_instance_yaml(tmp / "home")

        rows = normalized_rows(tmp / "infos")
        upstream_emulation(fetcher).build(rows, tmp / "content", decoys=0)
        realistic(tmp / "content")
        archive_mb = (tmp / "content" / archive_path).stat().st_size / 1e6
        print(
            f"{args.source}: {args.members:,} noise JPEGs of {SIDE}x{SIDE} in a {archive_mb:.0f} MB archive, all of them needed; "
            f"link {args.mbit:g} Mbit/s, {args.rtt_ms:g} ms round trip; load average {os.getloadavg()[0]:.1f} at the start\n"
        )
        with Mirror(tmp / "content", link=Link(bandwidth_bytes_per_second=rate, rtt_seconds=rtt)) as mirror:
            environment.update(attach(mirror))
            os.environ.update(environment)
            names = [info.filename for info in zipfile.ZipFile(tmp / "content" / archive_path).infolist() if info.filename.endswith(".jpg")]
            out = tmp / "guide"
            out.mkdir()
            guide_result = run(mirror, partial(guide, f"{mirror.url}{archive_url}", names, out))
            shutil.rmtree(out)

            with dg.DagsterInstance.get() as instance:
                set_pool_limits(instance)
                with Dev(tmp) as dev:
                    # the infos through the queue too: the daemon is warm when the source's runs come
                    wait_for(instance, [dev.launch("__ASSET_JOB", split, ["infos_image"]) for split in splits_for("image")])
                    keys = partitions_with_rows(default_store().process_config_and_initialize(), asset, "image")
                    submitted = {}

                    def partitions() -> str:
                        started = time.time()
                        # side by side, as one click or one sensor tick asks for them all at once
                        with ThreadPoolExecutor(4) as pool:
                            run_ids = list(pool.map(partial(dev.launch, f"fill_{asset}"), keys))
                        submitted["seconds"] = time.time() - started
                        runs = wait_for(instance, run_ids)
                        picked = Counter()
                        for run_id in run_ids:
                            (record,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
                            metadata = record.asset_materialization.metadata
                            picked[metadata["read_method"].value] += 1
                            submitted["fetch"] = submitted.get("fetch", 0) + metadata["fetch_seconds"].value
                            submitted["place"] = submitted.get("place", 0) + metadata["place_seconds"].value
                        submitted["runs"] = runs
                        return ", ".join(f"{method} x{count}" for method, count in picked.items())

                    load, cpu = os.getloadavg()[0], busy_cores()
                    ours = run(mirror, partitions)
                    load_after, cpu = os.getloadavg()[0], busy_cores(cpu)
                    rows = [phases(instance, r.run_id, asset) for r in submitted["runs"]]
                    noops = []
                    for _ in range(args.noop):
                        started = time.monotonic()
                        (noop_run,) = wait_for(instance, [dev.launch(f"fill_{asset}", keys[0])])
                        noops.append((time.monotonic() - started, phases(instance, noop_run.run_id, asset)))
                    timeline = [
                        (record.timestamp, record.dagster_event.event_type.name if record.dagster_event else "LOG", record.message or "")
                        for record in instance.all_logs(noop_run.run_id if noops else submitted["runs"][0].run_id)
                    ]
                    noop_stats = mirror.stats()
            placed = sum(1 for _ in (tmp / "root" / "e-mm1_1m_only" / "image").iterdir())
            assert placed == args.members, placed
        limit = archive_mb * 1e6 / rate + 2 * rtt
        print("| approach | seconds | MB sent | requests | read methods |")
        print("|---|---|---|---|---|")
        print(f"| guide: download whole, extract | {guide_result[0]:.1f} | {guide_result[1] / 1e6:.0f} | {guide_result[2]} | - |")
        print(f"| ours: {len(keys)} runs through the queue | {ours[0]:.1f} | {ours[1] / 1e6:.0f} | {ours[2]} | {ours[3]} |")
        print(f"\nours / guide speed: {guide_result[0] / ours[0]:.2f}x; physical limit {limit:.1f} s (ours / limit {ours[0] / limit:.2f}); "
              f"load average {load:.1f} before ours, {load_after:.1f} after; {cpu:.1f} of {os.cpu_count()} cores busy during ours "
              f"(every process on the machine); submitting took {submitted['seconds']:.1f} s")
        print(f"\nwhere the {len(rows)} runs' time went (event logs; the asset step's fetching {submitted['fetch']:.1f} s "
              f"and placing {submitted['place']:.1f} s summed over runs, from their metadata):\n")
        print(breakdown(rows))
        if noops:
            print(f"\nno-op re-runs of partition {keys[0]} (every file present): submission to success, and Dagster's RUN_START to RUN_SUCCESS\n")
            print("| re-run | submitted -> success s | RUN_START -> RUN_SUCCESS s | queued s | process start, code load s | asset step s | checks s |")
            print("|---|---|---|---|---|---|---|")
            for n, (seconds, row) in enumerate(noops, 1):
                print(f"| {n} | {seconds:.2f} | {row['run']:.2f} | {row['queued']:.2f} | {row['process start, code load']:.2f} | {row['asset step']:.2f} | {row['checks']:.2f} |")
            print(f"\nrequests the mirror saw during the no-op re-runs: {noop_stats['requests'] - ours[2]}")
        print("\nthe last run's event log (seconds from its first event):\n")
        for at, kind, message in timeline:
            print(f"{at - timeline[0][0]:7.2f} {kind:26} {message[:110]}")


if __name__ == "__main__":
    main()
