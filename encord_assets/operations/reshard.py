"""Re-key the manifests of sources whose shard count changed, so nothing is fetched again.

A row's partition is `xxhash64(target) mod shards`: a new shard count moves rows between
partitions. `encord-assets reshard` reads every manifest of each hashed source, recomputes each
row's key with the registry's current count, writes one manifest per new key (rows keep their
outcome, bytes and sha256), removes manifests of keys that no longer hold rows (and what the checks remembered of them), and records a
materialization in the Dagster instance for every re-keyed partition without failed rows, so the
UI, the fill schedule and the retry sensor see them done. Files in the layout are not touched.
Re-materialize the infos assets afterwards (no network): their tables carry the partition keys.
"""

import os
from pathlib import Path, PurePosixPath

import dagster as dg
import polars as pl

from encord_assets.layout.paths import bookkeeping_key, manifest_key
from encord_assets.ledger import Outcome
from encord_assets.sources.partitions import partition_key_expr, shards_name
from encord_assets.sources.registry import SOURCES, SourceSpec
from encord_assets.store import DatasetStore

KEY = "_partition_key"


def reshard_source(store: DatasetStore, spec: SourceSpec, instance: dg.DagsterInstance | None) -> dict[str, int]:
    """Re-key one source's manifests; returns counts of manifests read, written and removed."""
    files = sorted(key for key in store.find(bookkeeping_key("manifests", spec.name)) if key.endswith(".parquet"))
    if spec.partitions is not None or not files:
        return {"read": 0, "written": 0, "removed": 0}
    rows = pl.concat(
        [store.read_parquet(f).with_columns(_file=pl.lit(f)) for f in files], how="diagonal_relaxed"
    ).with_columns(partition_key_expr(pl.lit(spec.shards)).alias(KEY))
    rows_per_file = dict(rows.group_by("_file").len().iter_rows())
    if instance is not None:  # the shards rows now fall in exist as partitions before they are recorded
        shards = set(rows[KEY].str.split("|").list.first().to_list())
        new = sorted(shards - set(instance.get_dynamic_partitions(shards_name(spec.name))))
        if new:
            instance.add_dynamic_partitions(shards_name(spec.name), new)
    written, kept = 0, set()
    for (key,), group in rows.group_by(KEY, maintain_order=True):
        target = manifest_key(spec.name, key)
        kept.add(target)
        if set(group["_file"]) == {target} and rows_per_file[target] == group.height:
            continue  # this partition's rows did not move
        manifest = group.drop("_file", KEY).sort("infos_file", "infos_row")
        store.write_manifest(spec.name, key, manifest)
        written += 1
        if instance is not None and not (manifest["outcome"] == Outcome.FAILED.value).any():
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=spec.name,
                    partition=key,
                    description=f"re-keyed for {spec.shards} shards by `encord-assets reshard` (nothing fetched)",
                    metadata={"rows": manifest.height, **dict(manifest.group_by("outcome").len().iter_rows())},
                )
            )
    stale = [f for f in files if f not in kept]
    # what the checks remembered of a removed partition would never be read again
    stale_names = {PurePosixPath(f).name for f in stale}
    verdicts = [
        f for f in store.find(bookkeeping_key("verified")) if PurePosixPath(f).parent.name == spec.name and PurePosixPath(f).name in stale_names
    ]
    for f in stale + verdicts:
        store.delete(f)
    return {"read": len(files), "written": written, "removed": len(stale)}


def reshard(store: DatasetStore, instance: dg.DagsterInstance | None) -> dict[str, dict[str, int]]:
    return {spec.name: reshard_source(store, spec, instance) for spec in SOURCES}


def run_reshard(root: str, dagster_home: Path | None) -> int:
    """`encord-assets reshard`: every source, recorded in the instance of DAGSTER_HOME."""
    if dagster_home is not None:
        os.environ["DAGSTER_HOME"] = str(Path(dagster_home).absolute())
    with dg.DagsterInstance.get() as instance:
        for name, counts in reshard(DatasetStore(root=root), instance).items():
            if counts["written"] or counts["removed"]:
                print(f"{name}: {counts['read']} manifest(s) read, {counts['written']} written, {counts['removed']} removed")
    print("now re-materialize the infos assets (their tables carry the partition keys): no network is used")
    return 0
