"""The team deployment for real, on loopback: PostgreSQL instance, Redis broker, two Celery
workers and `dagster dev` (webserver + daemon) with deploy/celery/dagster.yaml.

A backfill of COCO and Flickr30k partitions launched through GraphQL is shared by both workers
and succeeds; then the worker process running a slowed-down COCO run is SIGKILLed: nothing
partial reaches the layout, run monitoring marks the run failed, the retry sensor re-requests
the partition and the new run completes.
"""

import hashlib
import os
import re
import signal
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import requests
import yaml
from dagster_graphql import DagsterGraphQLClient

from encord_assets.layout.paths import BOOKKEEPING_DIR, staging_key
from encord_assets.materialize import Materializer
from encord_assets.mirror.coco import coco_image
from encord_assets.operations.instance import set_pool_limits
from encord_assets.operations.loopback import Unavailable, local_postgres, local_redis, postgres_bin_dir, redis_server_bin
from encord_assets_tests.conftest import manifest_of
from encord_assets_tests.processes import DAGSTER, LAUNCH_BACKFILL, PATIENCE_SECONDS, free_port, responds, start, stop_group

pytestmark = pytest.mark.long_running

DEPLOY = Path(__file__).parents[2] / "deploy"
DAGSTER_CELERY = str(Path(DAGSTER).with_name("dagster-celery"))
TASK_ID_TAG = "dagster-celery/task_id"
BACKFILL_PER_SOURCE = 2


def skip_without_servers() -> None:
    try:
        postgres_bin_dir()
        redis_server_bin()
    except Unavailable as error:
        print(f"SKIPPED: {error}")  # visible in the output, not only in the summary
        pytest.skip(str(error))


@pytest.fixture
def team_instance(sample_mirror, root, dagster_home, monkeypatch):
    """PostgreSQL + Redis up, deploy/celery/dagster.yaml in DAGSTER_HOME (monitoring every 2 s),
    retry sensor settings for a test, infos materialized; yields the open instance."""
    skip_without_servers()
    with local_postgres() as postgres_url, local_redis() as redis_url:
        config = yaml.safe_load((DEPLOY / "celery" / "dagster.yaml").read_text())
        config["run_monitoring"]["poll_interval_seconds"] = 2
        (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
        for name, value in {
            "DAGSTER_POSTGRES_URL": postgres_url,
            "DAGSTER_CELERY_BROKER_URL": redis_url,
            "DAGSTER_CELERY_BACKEND_URL": redis_url,
            "ENCORD_RETRY_BACKOFF_SECONDS": "0",
            "ENCORD_RETRY_SENSOR_INTERVAL_SECONDS": "5",
        }.items():
            monkeypatch.setenv(name, value)
        with dg.DagsterInstance.get() as instance:
            set_pool_limits(instance)
            materializer = Materializer(instance)
            for split in ("e-mm1_100m", "e-mm1_1m"):
                materializer.run("infos_image", split, raise_on_error=True)
            yield instance


def graphql(port: int, query: str, variables: dict) -> dict:
    answer = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables}, timeout=60)
    answer.raise_for_status()
    body = answer.json()
    assert "errors" not in body, body
    return body["data"]


BACKFILL_STATUS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"""

LOCATION_LOADED = """{ workspaceOrError { ... on Workspace { locationEntries { loadStatus
  locationOrLoadError { __typename } } } } }"""


def wait_until(predicate, what: str, logs: list[Path], patience: float = PATIENCE_SECONDS):
    deadline = time.monotonic() + patience
    while not (found := predicate()):
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log.name}\n{log.read_text()[-2500:]}" for log in logs)
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(1)
    return found


def location_loaded(port: int) -> bool:
    if not responds(f"http://127.0.0.1:{port}/server_info"):
        return False
    entries = graphql(port, LOCATION_LOADED, {})["workspaceOrError"]["locationEntries"]
    return bool(entries) and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries)


def backfill_ended(port: int, backfill_id: str) -> str | None:
    status = graphql(port, BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]
    return None if status in ("REQUESTED", "CANCELING") else status


def worker_tasks(log: Path) -> set[str]:
    """Celery task ids this worker received (its log names each one)."""
    return set(re.findall(r"Task execute_job\[([0-9a-f-]+)\] received", log.read_text(errors="replace")))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_complete(root: Path, asset: str, key: str) -> pl.DataFrame:
    manifest = manifest_of(root, asset, key)
    assert manifest is not None, f"no manifest for {asset} {key}"
    assert set(manifest["outcome"]) <= {"placed", "already_present"}, manifest
    for row in manifest.iter_rows(named=True):
        assert sha256(root / row["target"]) == row["sha256"], row["target"]
    return manifest


def test_backfill_shared_by_two_celery_workers_and_a_killed_worker_run_is_retried(team_instance, sample_mirror, root, tmp_path):
    instance = team_instance
    materializer = Materializer(instance)
    coco = materializer.source_partitions("image_coco", "image")
    flickr = materializer.source_partitions("image_flickr30k", "image")
    backfilled = {"image_coco": coco[:BACKFILL_PER_SOURCE], "image_flickr30k": flickr[:BACKFILL_PER_SOURCE]}
    killed_key = coco[BACKFILL_PER_SOURCE]

    port = free_port()
    logs = {name: tmp_path / f"{name}.log" for name in ("dev", "worker_a", "worker_b")}
    processes = []
    try:
        for name in ("worker_a", "worker_b"):
            command = [DAGSTER_CELERY, "worker", "start", "-A", "dagster_celery.app", "-n", name,
                       "-y", str(DEPLOY / "celery" / "worker.yaml"), "--", "--concurrency=1"]  # fmt: skip
            processes.append(start(command, tmp_path, logs[name]))
        processes.append(start([DAGSTER, "dev", "-m", "encord_assets.definitions", "-h", "127.0.0.1", "-p", str(port)], tmp_path, logs["dev"]))
        all_logs = list(logs.values())
        wait_until(lambda: location_loaded(port), "the code location", all_logs)
        wait_until(lambda: all("ready." in logs[w].read_text(errors="replace") for w in ("worker_a", "worker_b")), "both workers", all_logs)

        # 1. One asset backfill over both sources, launched as the UI does.
        params = {
            "partitionsByAssets": [
                {"assetKey": {"path": [asset]}, "partitions": {"ranges": [{"start": key, "end": key} for key in keys]}}
                for asset, keys in backfilled.items()
            ]
        }
        launched = graphql(port, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]
        status = wait_until(lambda: backfill_ended(port, backfill_id), "the backfill", all_logs)
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert status == "COMPLETED_SUCCESS", (status, [r.status for r in runs])
        assert len(runs) == sum(len(keys) for keys in backfilled.values())
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        tasks = {run.tags[TASK_ID_TAG] for run in runs}
        per_worker = {w: worker_tasks(logs[w]) & tasks for w in ("worker_a", "worker_b")}
        assert all(per_worker.values()), f"one worker took every run: {per_worker}"
        assert per_worker["worker_a"] | per_worker["worker_b"] == tasks
        for asset, keys in backfilled.items():
            for key in keys:
                manifest_complete(root, asset, key)

        # 2. A slow run whose worker process is SIGKILLed once it has started staging files.
        sample_mirror.set_faults(0.0, path_prefix="/coco/", latency_seconds=2.0)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
        killed_run = client.submit_job_execution("fill_image_coco", tags={"dagster/partition": killed_key})
        owner = (root / staging_key("image_coco", killed_key)) / killed_run / ".owner"
        wait_until(owner.exists, "the run's staging folder", all_logs)
        pid = int(owner.read_text().split()[1])
        os.kill(pid, signal.SIGKILL)
        sample_mirror.set_faults(0.0)

        wait_until(lambda: instance.get_run_by_id(killed_run).is_finished, "the killed run to end", all_logs)
        assert instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.FAILURE
        rows = pl.read_parquet(root / BOOKKEEPING_DIR / "tables" / "infos_image" / "*.parquet").filter(
            (pl.col("source") == "image_coco") & (pl.col("partition_key") == killed_key)
        )
        reference = {root / row["target"]: coco_image(row["file_id"]) for row in rows.iter_rows(named=True)}
        # Whatever the killed run renamed into place is whole; the rest is not there at all.
        assert all(path.read_bytes() == data for path, data in reference.items() if path.exists())

        def retried():
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"encord/requested_by": "retry_sensor", "dagster/partition": killed_key}))
            return [run for run in runs if run.status == dg.DagsterRunStatus.SUCCESS]

        (retry,) = wait_until(retried, "the retry sensor's run to succeed", all_logs)
        assert retry.tags["encord/retry_attempt"] == "1"
        manifest = manifest_complete(root, "image_coco", killed_key)
        assert set(manifest["target"]) == set(rows["target"])
        assert all(path.read_bytes() == data for path, data in reference.items())
        assert not ((root / staging_key("image_coco", killed_key)) / killed_run).exists()
    finally:
        for process in processes:
            stop_group(process)
