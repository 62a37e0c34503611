"""Staging folders under ROOT (same filesystem as the layout, so placing is a rename)."""

import shutil
from pathlib import Path

import dagster as dg

from encord_assets.layout.paths import staging_root


def fresh_staging_dir(root: Path, asset_name: str, partition_key: str, run_id: str, instance: dg.DagsterInstance) -> Path:
    """This run's staging folder, after removing what killed or finished runs left behind.

    Folders of runs still in progress are kept: two runs of one partition may overlap.
    """
    base = staging_root(root, asset_name, partition_key)
    if base.is_dir():
        for leftover in base.iterdir():
            if leftover.name == run_id:
                continue
            run = instance.get_run_by_id(leftover.name)
            if run is None or run.is_finished:
                shutil.rmtree(leftover, ignore_errors=True)
    return base / run_id
