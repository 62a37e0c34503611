"""Processes the tests start (servers, CLI runs, workers): each in its own session with default
signal handlers, stopped by killing its process group, so none outlives its test."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from encord_assets.operations.loopback import free_port

DAGSTER = str(Path(sys.executable).with_name("dagster"))
PATIENCE_SECONDS = 240  # a safety net for a stuck server, not a speed requirement

# the GraphQL mutation the UI sends for *Materialize...* over partitions
LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message }
  }
}"""

__all__ = ["DAGSTER", "LAUNCH_BACKFILL", "PATIENCE_SECONDS", "free_port", "group_members", "responds", "start", "stop_group"]


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
