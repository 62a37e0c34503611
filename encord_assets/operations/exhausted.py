"""Partitions the retry sensor gave up on, kept beside the manifests so reports read them from disk."""

import json
from pathlib import Path

import polars as pl

from encord_assets.layout.paths import bookkeeping_dir, manifest_path, write_atomically

EXHAUSTED_SCHEMA = {"asset": pl.String, "partition": pl.String, "attempts": pl.Int64, "last_request": pl.String, "manifest": pl.String}


def exhausted_path(root: Path, asset_name: str) -> Path:
    return bookkeeping_dir(root) / "exhausted" / f"{asset_name}.json"


def write_exhausted(root: Path, asset_name: str, entries: dict[str, dict]) -> None:
    """entries: partition key -> {"attempts", "last_request"}; an empty dict removes the file."""
    path = exhausted_path(root, asset_name)
    if not entries:
        path.unlink(missing_ok=True)
        return
    rows = [
        {"asset": asset_name, "partition": key, **entry, "manifest": str(manifest_path(root, asset_name, key))}
        for key, entry in sorted(entries.items())
    ]
    write_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=1)))


def read_exhausted(root: Path) -> pl.DataFrame:
    rows = []
    for path in sorted((bookkeeping_dir(root) / "exhausted").glob("*.json")):
        rows.extend(json.loads(path.read_text()))
    return pl.DataFrame(rows, schema=EXHAUSTED_SCHEMA)
