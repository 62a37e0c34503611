"""Per-run staging folders: under ROOT for a local ROOT (same filesystem, so placing is a rename),
in a local scratch folder for an object-storage ROOT."""

import os
import shutil
import socket
import time
from pathlib import Path

import dagster as dg


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


def fresh_staging_dir(base: Path, run_id: str, instance: dg.DagsterInstance) -> tuple[Path, bool]:
    """This run's staging folder under `base`, after removing what killed or finished runs left
    behind, and whether another run of the partition is still in progress.

    Folders of runs still in progress are kept: two runs of one partition may overlap.
    """
    others_alive = False
    if base.is_dir():
        for leftover in base.iterdir():
            if leftover.name == run_id:
                continue
            if leftover.name.startswith("."):  # a folder being set up (below) by another run
                if time.time() - leftover.stat().st_mtime > 60:
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    others_alive = True
                continue
            run = instance.get_run_by_id(leftover.name)
            if run is None or run.is_finished or not _owner_alive(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                others_alive = True
    folder = base / run_id
    if not folder.is_dir():
        # The owner file is in place before the folder appears, so a run of the same partition
        # starting meanwhile never takes this folder for a dead run's leftovers.
        building = base / f".{run_id}.{os.getpid()}"
        building.mkdir(parents=True, exist_ok=True)
        (building / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}")
        os.replace(building, folder)
    return folder, others_alive
