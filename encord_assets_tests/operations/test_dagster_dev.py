"""The real thing: `dagster dev` (webserver + daemon) and the `dagster` CLI against the mirror.

Servers start in their own process group with default signal handlers and are stopped by
killing that group, so no process outlives the test.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from encord_assets_tests.conftest import manifest_of
from encord_assets.layout.paths import BOOKKEEPING_DIR
from encord_assets.materialize import Materializer
from encord_assets.operations.instance import install_instance_yaml, set_pool_limits

DAGSTER = str(Path(sys.executable).with_name("dagster"))
PATIENCE_SECONDS = 240  # a safety net for a stuck server, not a speed requirement


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start(command: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=default_signals)


def responds(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).ok
    except requests.ConnectionError:
        return False


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the whole group, then SIGKILL whatever is left; the group must end empty."""
    pgid = process.pid  # start_new_session: the leader's pid is the group id
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while group_members(pgid) and time.monotonic() < deadline:
            process.poll()
            time.sleep(0.2)
        if not group_members(pgid):
            break
    process.wait(timeout=10)
    assert not group_members(pgid)


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
