"""The real thing: `encord-assets dev` (the mirror and `dagster dev`: webserver + daemon) and the
`dagster` CLI against a mirror, driven through GraphQL as the UI drives it.

Servers start in their own process group with default signal handlers and are stopped by
killing that group, so no process outlives the test.
"""

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient

from encord_assets_tests.conftest import fresh_dagster_home, manifest_of, start_mirror
from encord_assets.infos.files import splits_for
from encord_assets.layout.paths import BOOKKEEPING_DIR
from encord_assets.materialize import Materializer
from encord_assets.mirror.build import attach
from encord_assets.operations.instance import set_pool_limits
from encord_assets.products.coverage import completeness_by_split
from encord_assets.settings import BY_NAME
from encord_assets.sources.partitions import partitions_with_rows
from encord_assets.store import DatasetStore
from encord_assets_tests.processes import DAGSTER, LAUNCH_BACKFILL, PATIENCE_SECONDS, free_port, responds, start, stop_group

pytestmark = pytest.mark.long_running

ENCORD_ASSETS = str(Path(sys.executable).with_name("encord-assets"))


@dataclass
class Dev:
    """One `encord-assets dev` (mirror, webserver, daemon) on 127.0.0.1, with its ROOT and instance."""

    web: "Webserver"
    mirror: str
    root: Path
    folder: Path
    environment: dict[str, str]
    coco_keys: list[str]  # four partitions of image_coco with rows
    failing_key: str  # another one, in a shard none of those four is in


@pytest.fixture(scope="module")
def dev(sample_mirror_content, tmp_path_factory):
    """ONE `encord-assets dev` for the module's tests: starting it is most of what a test here costs.
    Before it starts, the project's dagster.yaml is installed and the infos of images and audio
    are materialized; a mirror of the sample serves the CLI runs the tests start beside it."""
    folder = tmp_path_factory.mktemp("dagster_dev")
    root, port, log = folder / "root", free_port(), folder / "dev.log"
    server = None
    with fresh_dagster_home(folder) as home, pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for name in (*BY_NAME, "DAGSTER_HOME"):
            patch.delenv(name, raising=False)
        environment = {"ROOT_DATA_PATH": str(root), "DAGSTER_HOME": str(home), "HF_HOME": str(folder / "hf_home")}
        # a busy machine can keep the code server from answering a run launch within Dagster's default 60 s
        environment["DAGSTER_GRPC_TIMEOUT_SECONDS"] = "300"
        # the tests read a failed partition as its run left it: a retry (tested on its own) would replace it
        environment["ENCORD_RETRY_SENSOR"] = "false"
        for name, value in environment.items():
            patch.setenv(name, value)
        mirror = start_mirror(None, sample_mirror_content, patch)
        environment.update(attach(mirror))
        try:
            with dg.DagsterInstance.get() as instance:
                set_pool_limits(instance)
                materializer = Materializer(instance)
                for asset, modality in (("infos_image", "image"), ("infos_audio", "audio")):
                    for split in splits_for(modality):
                        materializer.run(asset, split, raise_on_error=True)
                coco = materializer.source_partitions("image_coco", "image")
            # a file shared by two splits has the same shard in both: in another shard, nothing is already present
            failing_key = next(key for key in coco[4:] if key.split("|")[0] not in {k.split("|")[0] for k in coco[:4]})
            command = [ENCORD_ASSETS, "dev", "--root", str(root), "--dagster-home", str(home), "--mirror-dir", str(folder / "mirror")]
            server = start([*command, "--port", str(port)], folder, log)
            web = Webserver(port, server, log)
            dev_mirror = web.mirror_url()
            web.wait_for_code_location()
            yield Dev(web, dev_mirror, root, folder, environment, coco[:4], failing_key)
        finally:
            if server is not None:
                stop_group(server)
            mirror.stop()


@pytest.fixture
def web(dev, monkeypatch) -> "Webserver":
    """The shared server, with this test's environment (ROOT, DAGSTER_HOME, mirror settings) set to its own."""
    monkeypatch.chdir(dev.folder)
    for name, value in dev.environment.items():
        monkeypatch.setenv(name, value)
    return dev.web


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


def partition_of(run: dict) -> str | None:
    return next((tag["value"] for tag in run["tags"] if tag["key"] == "dagster/partition"), None)


def assert_all_succeeded(webserver: Webserver, backfill_id: str, expected: set[tuple[str, str]]) -> None:
    """Every (asset, partition) of `expected` had a run of the backfill, and every run succeeded."""
    status, runs = webserver.wait_for_backfill(backfill_id)
    done = {(asset["path"][-1], partition_of(run)) for run in runs for asset in run["assetSelection"]}
    assert status == "COMPLETED_SUCCESS" and {run["status"] for run in runs} == {"SUCCESS"}, (status, runs)
    assert done == expected


@pytest.mark.timeout(1500)  # a safety net: about 3 minutes on an idle 2-core machine, far more on a busy one
def test_jobs_and_asset_backfills_through_graphql_beside_a_cli_run(dev, web):
    web_key, cli_key, backfill_keys = dev.coco_keys[0], dev.coco_keys[1], dev.coco_keys[2:4]
    cli_log = dev.folder / "cli.log"
    # one SQLite instance serves the CLI run and the server's runs at once
    cli = start(
        [DAGSTER, "asset", "materialize", "-m", "encord_assets.definitions", "--select", "image_coco", "--partition", cli_key],
        dev.folder,
        cli_log,
    )
    try:
        job_run = web.submit_job("fill_image_coco", web_key)
        # an infos asset, and "Materialize all" over an infos asset and a source with its own partitions
        infos = web.launch_backfill(["infos_image"], ["e-mm1_100m", "e-mm1_1m"])
        everything = web.launch_backfill(["infos_points", "points_abo"])
        assert web.wait_for_run(job_run) == "SUCCESS", web.log.read_text()[-3000:]
        assert_all_succeeded(web, infos, {("infos_image", "e-mm1_100m"), ("infos_image", "e-mm1_1m")})
        assert_all_succeeded(
            web, everything, {("infos_points", split) for split in ("e-mm1_100m", "e-mm1_1m", "eshot")} | {("points_abo", "ABO")}
        )
        # a hashed `<shard>|<split>` source: partitions chosen as in the asset's *Materialize...* dialog
        hashed = web.launch_backfill(["image_coco"], backfill_keys)
        assert_all_succeeded(web, hashed, {("image_coco", key) for key in backfill_keys})
        returncode = cli.wait(timeout=PATIENCE_SECONDS)
    finally:
        stop_group(cli)
    assert returncode == 0, cli_log.read_text()[-3000:]
    for key in (web_key, cli_key, *backfill_keys):
        assert all(path.is_file() for path in placed_files(dev.root, key))


@pytest.mark.timeout(1500)
def test_a_partition_with_failed_rows_shows_its_outcomes_and_a_failed_check(dev, web):
    key = dev.failing_key
    faults = f"{dev.mirror}/_mirror/faults"
    requests.post(faults, json={"rate": 1.0, "kinds": ["503"], "path_prefix": "/coco/"}, timeout=10).raise_for_status()
    try:
        status, runs = web.wait_for_backfill(web.launch_backfill(["image_coco"], [key]))
    finally:
        requests.post(faults, json={"rate": 0.0}, timeout=10).raise_for_status()
    # the partition's outcomes are materialized, then its blocking check fails the run
    assert status.startswith("COMPLETED") and [run["status"] for run in runs] == ["FAILURE"], (status, runs)
    latest = web.query(LATEST, asset={"path": ["image_coco"]}, partition=key)
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
    expected = completeness_by_split(DatasetStore(root=str(dev.root))).filter(pl.col("split") == "e-mm1_1m").row(0, named=True)
    assert entries["e-mm1_1m complete_pct"] == expected["complete_pct"] and 0 < expected["complete_pct"] < 100
    assert entries["e-mm1_1m not_fetched"] == expected["not_fetched"]


@pytest.mark.timeout(1500)
def test_backfill_of_an_audio_source_whose_splits_are_a_subset_of_its_infos(dev, web):
    # EShot clips: one split (`eshot`) of the three infos_audio has; each of its partitions depends on
    # every infos partition. Two partitions (one run each in the youtube pool's two slots).
    store = DatasetStore(root=str(dev.root))
    keys = partitions_with_rows(store, "audio_eshot", "audio")[:2]
    assert len(keys) == 2 and all(key.endswith("|eshot") for key in keys)
    assert_all_succeeded(web, web.launch_backfill(["audio_eshot"], keys), {("audio_eshot", key) for key in keys})
    for key in keys:
        manifest = store.read_manifest("audio_eshot", key)
        assert set(manifest["outcome"]) == {"placed"} and all((dev.root / target).is_file() for target in manifest["target"])


@pytest.mark.timeout(1500)
def test_open_images_by_class_through_asset_backfills(dev, web):
    # `encord-assets dev` serves the bundled Open Images sample and chooses its classes, as the demo does:
    # the class list and every split's annotations in one backfill, then every (class, split) partition
    # the class list added, as *Materialize all* sends them
    first = web.launch_backfill(["openimages_classes", "openimages_annotations"])
    assert_all_succeeded(
        web, first, {("openimages_classes", None)} | {("openimages_annotations", split) for split in ("train", "validation", "test")}
    )
    with dg.DagsterInstance.get() as instance:
        classes = sorted(instance.get_dynamic_partitions("openimages_class"))
    assert [folder.split("_")[0] for folder in classes] == ["Cat", "Handgun"]  # <display name>_<MID>
    images = web.launch_backfill(["image_openimagesv6"])
    expected = {("image_openimagesv6", f"{cls}|{split}") for cls in classes for split in ("test", "train", "validation")}
    assert_all_succeeded(web, images, expected)
    store = DatasetStore(root=str(dev.root))
    manifests = pl.concat([store.read_manifest("image_openimagesv6", key).with_columns(partition=pl.lit(key)) for _, key in expected])
    placed = manifests.filter(pl.col("outcome") == "placed")
    # the sample has images of both classes (not in every split), and every one was placed
    assert set(manifests["outcome"]) == {"placed"} and {key.split("|")[0] for key in placed["partition"]} == set(classes)
    assert all((dev.root / target).is_file() for target in placed["target"])
