"""Decide, from the files on disk and the last manifest, which targets still need fetching."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from encord_assets.layout.outcomes import RESULT_SCHEMA, Outcome
from encord_assets.layout.paths import UnsafePath, inside_root, manifest_path


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_manifest(root: Path, asset_name: str, partition_key: str) -> pl.DataFrame | None:
    path = manifest_path(root, asset_name, partition_key)
    return pl.read_parquet(path) if path.exists() else None


@dataclass
class Plan:
    todo: pl.DataFrame  # one row per target still to fetch (first infos row of that target)
    prior: pl.DataFrame  # RESULT_SCHEMA: already present, known unavailable, rejected targets


def plan_partition(
    root: Path, asset_name: str, partition_key: str, rows: pl.DataFrame, retry_unavailable: bool
) -> Plan:
    previous = read_manifest(root, asset_name, partition_key)
    known = {}
    if previous is not None:
        known = {r["target"]: r for r in previous.unique("target").iter_rows(named=True)}
    settled = []
    todo_targets = []
    for target in rows["target"].unique(maintain_order=True):
        try:
            final = inside_root(root, target)
        except UnsafePath as error:
            settled.append({"target": target, "outcome": Outcome.REJECTED.value, "error_class": "unsafe_path", "error_message": str(error)})
            continue
        before = known.get(target)
        if final.is_file() and final.stat().st_size > 0:
            size = final.stat().st_size
            # Re-hashing every present file on each run would read the whole dataset again.
            sha = before["sha256"] if before and before["bytes"] == size and before["sha256"] else sha256_of(final)
            settled.append({"target": target, "outcome": Outcome.ALREADY_PRESENT.value, "bytes": size, "sha256": sha})
        elif before and before["outcome"] == Outcome.UNAVAILABLE.value and not retry_unavailable:
            settled.append(
                {"target": target, "outcome": Outcome.UNAVAILABLE.value, "error_class": before["error_class"], "error_message": before["error_message"]}
            )
        else:
            todo_targets.append(target)
    todo = rows.unique("target", keep="first", maintain_order=True).filter(pl.col("target").is_in(todo_targets))
    return Plan(todo=todo, prior=pl.DataFrame(settled, schema=RESULT_SCHEMA))
