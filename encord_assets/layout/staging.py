"""Staging folders under ROOT (same filesystem as the layout, so placing is a rename)."""

import os
import shutil
import socket
import time
from pathlib import Path

import dagster as dg

from encord_assets.layout.paths import staging_root

OWNER_FILE = ".owner"


def _owner_alive(folder: Path) -> bool:
    """Whether the process that made `folder` still runs (a killed run never marks itself finished)."""
    try:
        host, pid = (folder / OWNER_FILE).read_text().split()
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():
        return True  # cannot tell from here: keep it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fresh_staging_dir(root: Path, asset_name: str, partition_key: str, run_id: str, instance: dg.DagsterInstance) -> Path:
    """This run's staging folder, after removing what killed or finished runs left behind.

    Folders of runs still in progress are kept: two runs of one partition may overlap.
    """
    base = staging_root(root, asset_name, partition_key)
    if base.is_dir():
        for leftover in base.iterdir():
            if leftover.name == run_id:
                continue
            if leftover.name.startswith("."):  # a folder being set up (below) by another run
                if time.time() - leftover.stat().st_mtime > 60:
                    shutil.rmtree(leftover, ignore_errors=True)
                continue
            run = instance.get_run_by_id(leftover.name)
            if run is None or run.is_finished or not _owner_alive(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
    folder = base / run_id
    if not folder.is_dir():
        # The owner file is in place before the folder appears, so a run of the same partition
        # starting meanwhile never takes this folder for a dead run's leftovers.
        building = base / f".{run_id}.{os.getpid()}"
        building.mkdir(parents=True, exist_ok=True)
        (building / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}")
        os.replace(building, folder)
    return folder
