"""Sensor ticks, and the UI's partition query, at the real partition counts.

    uv run python benchmarks/ticks_at_scale.py [--asset video_internvid] [--materialized 0.9] [--failed 20]

For the source asset with the most partitions (video_internvid: 4,096 shards x 2 splits = 8,192) the
instance records a materialization for `--materialized` of its partitions and `--failed` failed
runs; the infos table holds the asset's rows at E-MM1's size (benchmarks/partition_sizing.py).
Then, on a PostgreSQL instance (deploy/postgres/dagster.yaml, a server on 127.0.0.1) and on the
default SQLite instance as the baseline, it times: the retry sensor's first tick (no cursor: every
partition's status of every source, which is what each tick cost before the sensor kept a
cursor), a later tick (the failed partitions its cursor tracks), a tick after one more failed run,
a fill sensor tick starting at the asset (round-robin within ENCORD_FILL_TICK_SECONDS) and one
with no time limit from the first source on (it stops at the request cap), and the GraphQL query
the UI's Partitions tab makes (PartitionHealthQuery), through a real dagster-webserver. Ratios: PostgreSQL to SQLite, and each
retry tick to the first one.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import polars as pl
import requests

from encord_assets.layout.paths import BOOKKEEPING_DIR
from encord_assets.operations.instance import INSTANCE_YAML
from encord_assets.operations.loopback import free_port, local_postgres
from encord_assets.operations.fill import FILL_SENSOR
from encord_assets.operations.retry_sensor import RETRY_SENSOR
from encord_assets.sources.partitions import partition_key_expr, shards_name, source_partitions
from encord_assets.sources.registry import SOURCES, source_by_name

sys.path.insert(0, str(Path(__file__).parent))
from partition_sizing import row_counts, synthetic_rows  # noqa: E402

DEPLOY = Path(__file__).parents[1] / "deploy"
REPEATS = 3

PARTITION_HEALTH_QUERY = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey primaryDimEndKey
            secondaryDim { ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions } }
          }
        }
      }
    }
  }
}"""


def populate(instance: dg.DagsterInstance, root: Path, asset_name: str, materialized: float, failed: int):
    """Returns a function that records one more failed run, of the next partition not yet run."""
    spec = source_by_name(asset_name)
    partitions = source_partitions(spec)
    rows = synthetic_rows(spec, row_counts()[asset_name]).select(
        source=pl.lit(asset_name), partition_key=partition_key_expr(pl.lit(spec.shards))
    )
    # at this size every shard holds rows: register them as the infos asset would
    instance.add_dynamic_partitions(shards_name(asset_name), sorted(set(rows["partition_key"].str.split("|").list.first())))
    keys = partitions.get_partition_keys(dynamic_partitions_store=instance)
    done = keys[: int(len(keys) * materialized)]
    for key in done:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset_name, partition=key))

    # A stand-in with the asset's key and partitions that fails: real failed runs, as the sensor sees them.
    @dg.asset(name=asset_name, partitions_def=partitions)
    def stand_in() -> None:
        raise RuntimeError("a failed partition for the benchmark")

    not_run = iter(keys[len(done) :])

    def fail_one() -> None:
        dg.materialize([stand_in], partition_key=next(not_run), instance=instance, raise_on_error=False)

    for _ in range(failed):
        fail_one()

    table = root / BOOKKEEPING_DIR / "tables" / f"infos_{spec.modality}" / "e-mm1_100m.parquet"
    table.parent.mkdir(parents=True, exist_ok=True)
    rows.write_parquet(table)
    return fail_one


def best_of(fn) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def tick_times(instance: dg.DagsterInstance, asset_name: str, fail_one) -> dict[str, float]:
    from encord_assets.definitions import build_defs

    defs = build_defs()
    repository = defs.get_repository_def()

    def tick(name: str, cursor: str | None = None) -> dg.SensorResult:
        with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources) as context:
            return repository.get_sensor_def(name)(context)

    first = tick(RETRY_SENSOR)
    assert first.run_requests
    times = {"retry sensor, first tick (every partition of every source)": best_of(lambda: tick(RETRY_SENSOR))}
    times["retry sensor, later tick (partitions its cursor tracks)"] = best_of(lambda: tick(RETRY_SENSOR, first.cursor))
    fail_one()
    times["retry sensor, tick after one more failed run"] = best_of(lambda: tick(RETRY_SENSOR, first.cursor))
    fill_from_asset = json.dumps({"next": asset_name})
    times[f"fill sensor tick (from {asset_name}, round-robin)"] = best_of(lambda: tick(FILL_SENSOR, fill_from_asset))
    os.environ["ENCORD_FILL_TICK_SECONDS"] = "3600"
    sweep_defs = build_defs()  # settings are read when the definitions load
    with dg.build_sensor_context(instance=instance, definitions=sweep_defs, resources=sweep_defs.resources) as context:
        sweep = sweep_defs.get_repository_def().get_sensor_def(FILL_SENSOR)
        times["fill sensor tick, no time limit, from the first source to the request cap"] = best_of(lambda: sweep(context))
    del os.environ["ENCORD_FILL_TICK_SECONDS"]
    return times


def graphql_time(home: Path, asset_name: str, env: dict[str, str]) -> float:
    port = free_port()
    log = home / "webserver.log"
    command = [str(Path(sys.executable).with_name("dagster-webserver")), "-m", "encord_assets.definitions", "-h", "127.0.0.1", "-p", str(port)]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        query = {"query": PARTITION_HEALTH_QUERY, "variables": {"assetKey": {"path": [asset_name]}}}
        deadline = time.monotonic() + 300
        while True:
            try:
                answer = requests.post(f"http://127.0.0.1:{port}/graphql", json=query, timeout=120).json()
                if answer.get("data", {}).get("assetNodeOrError", {}).get("assetPartitionStatuses"):
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(log.read_text()[-3000:])
            time.sleep(1)
        return best_of(lambda: requests.post(f"http://127.0.0.1:{port}/graphql", json=query, timeout=120).raise_for_status())
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def measure(kind: str, config: Path, extra_env: dict[str, str], args) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix=f"encord_ticks_{kind}_"))
    root = home / "root"
    shutil.copyfile(config, home / "dagster.yaml")
    env = {**os.environ, **extra_env, "DAGSTER_HOME": str(home), "ROOT_DATA_PATH": str(root), "ENCORD_RETRY_BACKOFF_SECONDS": "0"}
    os.environ.update(env)
    try:
        with dg.DagsterInstance.get() as instance:
            started = time.perf_counter()
            fail_one = populate(instance, root, args.asset, args.materialized, args.failed)
            print(f"{kind}: populated in {time.perf_counter() - started:.0f} s", flush=True)
            times = tick_times(instance, args.asset, fail_one)
        times["UI partition query (GraphQL)"] = graphql_time(home, args.asset, env)
        print(f"{kind}: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items()), flush=True)
        return times
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    largest = max(SOURCES, key=lambda spec: spec.shards * len(spec.splits)).name
    parser.add_argument("--asset", default=largest)
    parser.add_argument("--materialized", type=float, default=0.9)
    parser.add_argument("--failed", type=int, default=20)
    args = parser.parse_args()
    partitions = source_by_name(args.asset).shards * len(source_by_name(args.asset).splits)
    with local_postgres() as url:
        postgres = measure("postgres", DEPLOY / "postgres" / "dagster.yaml", {"DAGSTER_POSTGRES_URL": url}, args)
    sqlite = measure("sqlite", INSTANCE_YAML, {}, args)
    print(f"\n{args.asset}: {partitions:,} partitions, {args.materialized:.0%} materialized, {args.failed} failed; best of {REPEATS}\n")
    first = next(iter(postgres))
    print("| measure | PostgreSQL s | SQLite s (baseline) | ratio | PostgreSQL, to the first retry tick |\n|---|---|---|---|---|")
    for name, seconds in postgres.items():
        to_first = f"{seconds / postgres[first]:.3f}" if name.startswith("retry") else ""
        print(f"| {name} | {seconds:.2f} | {sqlite[name]:.2f} | {seconds / sqlite[name]:.2f} | {to_first} |")
    print(f"\n(median of the per-measure ratios: {statistics.median(postgres[n] / sqlite[n] for n in postgres):.2f})")


if __name__ == "__main__":
    main()
