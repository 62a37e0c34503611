"""Partitions the retry sensor gave up on, kept beside the manifests so reports read them from ROOT."""

from __future__ import annotations

import json

from encord_assets.layout.paths import bookkeeping_key, manifest_key
from encord_assets.lazy import pl
from encord_assets.store import DatasetStore

EXHAUSTED_SCHEMA = {"asset": str, "partition": str, "attempts": int, "last_request": str, "manifest": str}


def exhausted_key(asset_name: str) -> str:
    return bookkeeping_key("exhausted", f"{asset_name}.json")


def write_exhausted(store: DatasetStore, asset_name: str, entries: dict[str, dict]) -> None:
    """entries: partition key -> {"attempts", "last_request"}; an empty dict removes the file."""
    key = exhausted_key(asset_name)
    if not entries:
        store.delete(key)
        return
    rows = [
        {"asset": asset_name, "partition": partition, **entry, "manifest": store.uri(manifest_key(asset_name, partition))}
        for partition, entry in sorted(entries.items())
    ]
    store.write_bytes(key, json.dumps(rows, indent=1).encode())


def read_exhausted(store: DatasetStore) -> pl.DataFrame:
    rows = []
    for key in store.find(bookkeeping_key("exhausted")):
        if key.endswith(".json") and (data := store.read_bytes(key)) is not None:
            rows.extend(json.loads(data))
    return pl.DataFrame(rows, schema=EXHAUSTED_SCHEMA)
