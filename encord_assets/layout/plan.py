"""Decide, from the last manifest and what the store holds, which targets still need fetching."""

from __future__ import annotations

from dataclasses import dataclass

from encord_assets.layout.paths import UnsafePath, layout_key
from encord_assets.lazy import pl
from encord_assets.ledger import RESULT_SCHEMA, Outcome
from encord_assets.store import DatasetStore


@dataclass
class Plan:
    todo: pl.DataFrame  # one row per target still to fetch (first infos row of that target)
    prior: pl.DataFrame  # RESULT_SCHEMA: already present, known unavailable, rejected targets


def plan_partition(store: DatasetStore, asset_name: str, partition_key: str, rows: pl.DataFrame) -> Plan:
    previous = store.read_manifest(asset_name, partition_key)
    known = {}
    if previous is not None:
        known = {r["target"]: r for r in previous.unique("target").iter_rows(named=True)}
    settled = []
    safe = []
    for target in rows["target"].unique(maintain_order=True):
        try:
            safe.append(layout_key(target))
        except UnsafePath as error:
            settled.append({"target": target, "outcome": Outcome.REJECTED.value, "error_class": "unsafe_path", "error_message": str(error)})
    present = store.present(safe)
    todo_targets = []
    for target in safe:
        before = known.get(target)
        size = present.get(target)
        if size is not None:
            # Re-hashing every present file on each run would read the whole dataset again.
            sha = before["sha256"] if before and before["bytes"] == size and before["sha256"] else store.sha256(target)
            settled.append({"target": target, "outcome": Outcome.ALREADY_PRESENT.value, "bytes": size, "sha256": sha})
        elif before and before["outcome"] == Outcome.UNAVAILABLE.value and not store.retry_unavailable:
            settled.append(
                {"target": target, "outcome": Outcome.UNAVAILABLE.value, "error_class": before["error_class"], "error_message": before["error_message"]}
            )
        else:
            todo_targets.append(target)
    todo = rows.unique("target", keep="first", maintain_order=True).filter(pl.col("target").is_in(todo_targets))
    return Plan(todo=todo, prior=pl.DataFrame(settled, schema=RESULT_SCHEMA))
