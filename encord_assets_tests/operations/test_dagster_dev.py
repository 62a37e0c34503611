"""The real thing: `dagster dev` (webserver + daemon) and the `dagster` CLI against the mirror.

Servers start in their own process group with default signal handlers and are stopped by
killing that group, so no process outlives the test.
"""

import os
import subprocess
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from encord_assets.layout.paths import bookkeeping_dir
from encord_assets.layout.plan import read_manifest
from encord_assets.materialize import Materializer
from encord_assets.operations.instance import install_instance_yaml, set_pool_limits
from encord_assets_tests.processes import DAGSTER, PATIENCE_SECONDS, free_port, responds, start, stop_group


@pytest.fixture
def prepared(sample_mirror, root):
    """The project's dagster.yaml in DAGSTER_HOME, infos materialized; the partitions with rows."""
    install_instance_yaml(Path(os.environ["DAGSTER_HOME"]))
    with dg.DagsterInstance.get() as instance:
        set_pool_limits(instance)
        materializer = Materializer(instance)
        for split in ("e-mm1_100m", "e-mm1_1m"):
            materializer.run("infos_image", split, raise_on_error=True)
    return materializer.source_partitions(root, "image_coco", "image")


def placed_files(root: Path, key: str) -> list[Path]:
    tables = bookkeeping_dir(root) / "tables" / "infos_image" / "*.parquet"
    rows = pl.read_parquet(tables).filter((pl.col("source") == "image_coco") & (pl.col("partition_key") == key))
    manifest = read_manifest(root, "image_coco", key)
    assert manifest is not None and set(manifest["outcome"]) == {"placed"}
    return [root / target for target in rows["target"]]


def launch_through_graphql(port: int, key: str, server: subprocess.Popen, log: Path) -> str:
    """Wait for the webserver and its code location, submit the partition's run, wait for it to end."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not responds(f"http://127.0.0.1:{port}/server_info"):
        assert time.monotonic() < deadline and server.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
    run_id = None
    while run_id is None:
        try:
            run_id = client.submit_job_execution("fill_image_coco", tags={"dagster/partition": key})
        except DagsterGraphQLClientError:  # the code location is still loading
            assert time.monotonic() < deadline and server.poll() is None, log.read_text()[-3000:]
            time.sleep(1)
    status = client.get_run_status(run_id)
    while status.value not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"run {run_id} still {status.value}"
        time.sleep(1)
        status = client.get_run_status(run_id)
    return status.value


def test_partition_runs_through_graphql_on_dagster_dev_and_through_the_cli_place_their_files(prepared, root, tmp_path):
    web_key, cli_key = prepared[:2]
    port, log, cli_log = free_port(), tmp_path / "dev.log", tmp_path / "cli.log"
    # Both at once (one SQLite instance serves both): the CLI run overlaps the servers' start-up.
    cli = start(
        [DAGSTER, "asset", "materialize", "-m", "encord_assets.definitions", "--select", "image_coco", "--partition", cli_key],
        tmp_path,
        cli_log,
    )
    server = None
    try:
        server = start([DAGSTER, "dev", "-m", "encord_assets.definitions", "-h", "127.0.0.1", "-p", str(port)], tmp_path, log)
        assert launch_through_graphql(port, web_key, server, log) == "SUCCESS", log.read_text()[-3000:]
        returncode = cli.wait(timeout=PATIENCE_SECONDS)
    finally:
        for process in (cli, server):
            if process is not None:
                stop_group(process)
    assert returncode == 0, cli_log.read_text()[-3000:]
    for key in (web_key, cli_key):
        assert all(path.is_file() for path in placed_files(root, key))
