"""The real thing: `encord-assets dev` (the mirror and `dagster dev`: webserver + daemon) and the
`dagster` CLI against a mirror, driven through GraphQL as the UI drives it.

Servers start in their own process group with default signal handlers and are stopped by
killing that group, so no process outlives the test.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient

from encord_assets_tests.conftest import manifest_of
from encord_assets.layout.paths import BOOKKEEPING_DIR
from encord_assets.materialize import Materializer
from encord_assets.operations.instance import install_instance_yaml, set_pool_limits
from encord_assets.products.coverage import completeness_by_split
from encord_assets.store import DatasetStore
from encord_assets_tests.processes import DAGSTER, LAUNCH_BACKFILL, PATIENCE_SECONDS, free_port, responds, start, stop_group

ENCORD_ASSETS = str(Path(sys.executable).with_name("encord-assets"))


@pytest.fixture
def prepared(sample_mirror, root):
    """The project's dagster.yaml in DAGSTER_HOME, infos materialized; the partitions with rows."""
    install_instance_yaml(Path(os.environ["DAGSTER_HOME"]))
    with dg.DagsterInstance.get() as instance:
        set_pool_limits(instance)
        materializer = Materializer(instance)
        for split in ("e-mm1_100m", "e-mm1_1m"):
            materializer.run("infos_image", split, raise_on_error=True)
    return materializer.source_partitions("image_coco", "image")


def placed_files(root: Path, key: str) -> list[Path]:
    tables = (root / BOOKKEEPING_DIR) / "tables" / "infos_image" / "*.parquet"
    rows = pl.read_parquet(tables).filter((pl.col("source") == "image_coco") & (pl.col("partition_key") == key))
    manifest = manifest_of(root, "image_coco", key)
    assert manifest is not None and set(manifest["outcome"]) == {"placed"}
    return [root / target for target in rows["target"]]


class Webserver:
    """GraphQL of a running `dagster dev` on 127.0.0.1."""

    def __init__(self, port: int, server: subprocess.Popen, log: Path):
        self.url, self.server, self.log = f"http://127.0.0.1:{port}", server, log
        self.client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)

    def alive(self, since: float) -> None:
        """Fails when the server died, or when one wait has lasted PATIENCE_SECONDS."""
        assert time.monotonic() < since + PATIENCE_SECONDS and self.server.poll() is None, self.log.read_text()[-3000:]

    def query(self, text: str, **variables) -> dict:
        reply = requests.post(f"{self.url}/graphql", json={"query": text, "variables": variables}, timeout=60)
        assert reply.ok, reply.text[-3000:]
        body = reply.json()
        assert "errors" not in body, body
        return body["data"]

    def mirror_url(self) -> str:
        """The mirror `encord-assets dev` serves, from the line it prints."""
        since = time.monotonic()
        while not (found := re.search(r"upstream mirror: (http://127\.0\.0\.1:\d+)", self.log.read_text())):
            self.alive(since)
            time.sleep(0.5)
        return found.group(1)

    def wait_for_code_location(self) -> None:
        since = time.monotonic()
        while not responds(f"{self.url}/server_info"):
            self.alive(since)
            time.sleep(0.5)
        while True:
            entries = self.query(WORKSPACE)["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
            self.alive(since)
            time.sleep(1)

    def submit_job(self, job: str, key: str) -> str:
        return self.client.submit_job_execution(job, tags={"dagster/partition": key})

    def wait_for_run(self, run_id: str) -> str:
        since = time.monotonic()
        status = self.client.get_run_status(run_id)
        while status.value not in ("SUCCESS", "FAILURE", "CANCELED"):
            self.alive(since)
            time.sleep(1)
            status = self.client.get_run_status(run_id)
        return status.value

    def launch_backfill(self, assets: list[str], partitions: list[str] | None = None) -> str:
        """What the UI sends for an asset's *Materialize...* (partitions chosen) or *Materialize all* (every partition)."""
        params = {"assetSelection": [{"path": [name]} for name in assets]}
        params.update({"partitionNames": partitions} if partitions else {"allPartitions": True})
        result = self.query(LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        return result["backfillId"]

    def wait_for_backfill(self, backfill_id: str) -> tuple[str, list[dict]]:
        """The backfill's final status and its runs (with the partition and assets of each)."""
        since = time.monotonic()
        while True:
            backfill = self.query(BACKFILL, id=backfill_id)["partitionBackfillOrError"]
            if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
                return backfill["status"], self.query(RUNS, tag=backfill_id)["runsOrError"]["results"]
            self.alive(since)
            time.sleep(1)


WORKSPACE = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
BACKFILL = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status error { message } } ... on PythonError { message } }
}"""
RUNS = """
query($tag: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $tag}]}) {
    ... on Runs { results { runId status tags { key value } assetSelection { path } } }
  }
}"""


LATEST = """
query($asset: AssetKeyInput!, $partition: String!) {
  assetOrError(assetKey: $asset) {
    ... on Asset { assetMaterializations(partitions: [$partition], limit: 1) { metadataEntries { label ... on TextMetadataEntry { text } } } }
  }
  assetCheckExecutions(assetKey: $asset, checkName: "no_failed_rows", partition: $partition, limit: 1) {
    status evaluation { description }
  }
}"""


REPORT = """
{
  assetOrError(assetKey: {path: ["coverage_report"]}) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        metadataEntries { label ... on FloatMetadataEntry { floatValue } ... on IntMetadataEntry { intValue } }
      }
    }
  }
}"""


def partition_of(run: dict) -> str:
    return next(tag["value"] for tag in run["tags"] if tag["key"] == "dagster/partition")


def assert_all_succeeded(webserver: Webserver, backfill_id: str, expected: set[tuple[str, str]]) -> None:
    """Every (asset, partition) of `expected` had a run of the backfill, and every run succeeded."""
    status, runs = webserver.wait_for_backfill(backfill_id)
    done = {(asset["path"][-1], partition_of(run)) for run in runs for asset in run["assetSelection"]}
    assert status == "COMPLETED_SUCCESS" and {run["status"] for run in runs} == {"SUCCESS"}, (status, runs)
    assert done == expected


@pytest.mark.timeout(1500)  # a safety net: about 3 minutes on an idle 2-core machine, far more on a busy one
def test_encord_assets_dev_runs_jobs_and_asset_backfills_through_graphql_beside_a_cli_run(prepared, root, tmp_path, monkeypatch):
    # a busy machine can keep the code server from answering a run launch within Dagster's default 60 s
    monkeypatch.setenv("DAGSTER_GRPC_TIMEOUT_SECONDS", "300")
    web_key, cli_key, backfill_keys = prepared[0], prepared[1], prepared[2:4]
    # a shard none of those fetch: a file shared by two splits has the same shard in both, and is found already present
    fetched_shards = {key.split("|")[0] for key in prepared[:4]}
    failing_key = next(key for key in prepared[4:] if key.split("|")[0] not in fetched_shards)
    port, log, cli_log = free_port(), tmp_path / "dev.log", tmp_path / "cli.log"
    # Both at once (one SQLite instance serves both): the CLI run overlaps the servers' start-up.
    cli = start(
        [DAGSTER, "asset", "materialize", "-m", "encord_assets.definitions", "--select", "image_coco", "--partition", cli_key],
        tmp_path,
        cli_log,
    )
    server = None
    try:
        dev = [ENCORD_ASSETS, "dev", "--root", str(root), "--dagster-home", os.environ["DAGSTER_HOME"], "--mirror-dir", str(tmp_path / "mirror")]
        server = start([*dev, "--port", str(port)], tmp_path, log)
        web = Webserver(port, server, log)
        mirror = web.mirror_url()
        web.wait_for_code_location()
        job_run = web.submit_job("fill_image_coco", web_key)
        # an infos asset, and "Materialize all" over an infos asset and a source with its own partitions
        infos = web.launch_backfill(["infos_image"], ["e-mm1_100m", "e-mm1_1m"])
        everything = web.launch_backfill(["infos_points", "points_abo"])
        assert web.wait_for_run(job_run) == "SUCCESS", log.read_text()[-3000:]
        assert_all_succeeded(web, infos, {("infos_image", "e-mm1_100m"), ("infos_image", "e-mm1_1m")})
        assert_all_succeeded(
            web, everything, {("infos_points", split) for split in ("e-mm1_100m", "e-mm1_1m", "eshot")} | {("points_abo", "ABO")}
        )
        # a hashed `<shard>|<split>` source: partitions chosen as in the asset's *Materialize...* dialog
        hashed = web.launch_backfill(["image_coco"], backfill_keys)
        assert_all_succeeded(web, hashed, {("image_coco", key) for key in backfill_keys})

        # a partition whose rows fail: what the UI shows for it is this run's outcomes and a failed check
        requests.post(f"{mirror}/_mirror/faults", json={"rate": 1.0, "kinds": ["503"], "path_prefix": "/coco/"}, timeout=10).raise_for_status()
        status, runs = web.wait_for_backfill(web.launch_backfill(["image_coco"], [failing_key]))
        # the partition's outcomes are materialized, then its blocking check fails the run
        assert status.startswith("COMPLETED") and [run["status"] for run in runs] == ["FAILURE"], (status, runs)
        latest = web.query(LATEST, asset={"path": ["image_coco"]}, partition=failing_key)
        (materialization,) = latest["assetOrError"]["assetMaterializations"]
        failed = next(entry["text"] for entry in materialization["metadataEntries"] if entry["label"] == "failed")
        (check,) = latest["assetCheckExecutions"]
        assert check["status"] == "FAILED"
        for text in (failed, check["evaluation"]["description"]):
            assert "failed transiently" in text and "503" in text, text

        # how complete the 1M split is: one asset's metadata, as the UI shows it
        with dg.DagsterInstance.get() as instance:
            Materializer(instance).run("coverage_report", raise_on_error=True)
        (report,) = web.query(REPORT)["assetOrError"]["assetMaterializations"]
        entries = {entry["label"]: entry.get("floatValue", entry.get("intValue")) for entry in report["metadataEntries"]}
        expected = completeness_by_split(DatasetStore(root=str(root))).filter(pl.col("split") == "e-mm1_1m").row(0, named=True)
        assert entries["e-mm1_1m complete_pct"] == expected["complete_pct"] and 0 < expected["complete_pct"] < 100
        assert entries["e-mm1_1m not_fetched"] == expected["not_fetched"]
        returncode = cli.wait(timeout=PATIENCE_SECONDS)
    finally:
        for process in (cli, server):
            if process is not None:
                stop_group(process)
    assert returncode == 0, cli_log.read_text()[-3000:]
    for key in (web_key, cli_key, *backfill_keys):
        assert all(path.is_file() for path in placed_files(root, key))
