"""Re-key the manifests of sources whose shard count changed, so nothing is fetched again.

A row's partition is `xxhash64(target) mod shards`: a new shard count moves rows between
partitions. `encord-assets reshard` reads every manifest of each hashed source, recomputes each
row's key with the registry's current count, writes one manifest per new key (rows keep their
outcome, bytes and sha256), removes manifests of keys that no longer hold rows, and records a
materialization in the Dagster instance for every re-keyed partition without failed rows, so the
UI, the fill schedule and the retry sensor see them done. Files in the layout are not touched.
Re-materialize the infos assets afterwards (no network): their tables carry the partition keys.
"""

import os
from pathlib import Path

import dagster as dg
import polars as pl

from encord_assets.layout.outcomes import Outcome
from encord_assets.layout.paths import manifest_path, manifests_dir, write_atomically
from encord_assets.sources.partitions import partition_key_expr
from encord_assets.sources.registry import SOURCES, SourceSpec

KEY = "_partition_key"


def reshard_source(root: Path, spec: SourceSpec, instance: dg.DagsterInstance | None) -> dict[str, int]:
    """Re-key one source's manifests; returns counts of manifests read, written and removed."""
    folder = manifests_dir(root) / spec.name
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if spec.partitions is not None or not files:
        return {"read": 0, "written": 0, "removed": 0}
    rows = pl.concat(
        [pl.read_parquet(f).with_columns(_file=pl.lit(str(f))) for f in files], how="diagonal_relaxed"
    ).with_columns(partition_key_expr(pl.lit(spec.shards)).alias(KEY))
    rows_per_file = dict(rows.group_by("_file").len().iter_rows())
    written, kept = 0, set()
    for (key,), group in rows.group_by(KEY, maintain_order=True):
        path = manifest_path(root, spec.name, key)
        kept.add(str(path))
        if set(group["_file"]) == {str(path)} and rows_per_file[str(path)] == group.height:
            continue  # this partition's rows did not move
        manifest = group.drop("_file", KEY).sort("infos_file", "infos_row")
        write_atomically(path, manifest.write_parquet)
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
    stale = [f for f in files if str(f) not in kept]
    for f in stale:
        f.unlink()
    return {"read": len(files), "written": written, "removed": len(stale)}


def reshard(root: Path, instance: dg.DagsterInstance | None) -> dict[str, dict[str, int]]:
    return {spec.name: reshard_source(Path(root), spec, instance) for spec in SOURCES}


def run_reshard(root: Path, dagster_home: Path | None) -> int:
    """`encord-assets reshard`: every source, recorded in the instance of DAGSTER_HOME."""
    if dagster_home is not None:
        os.environ["DAGSTER_HOME"] = str(Path(dagster_home).absolute())
    with dg.DagsterInstance.get() as instance:
        for name, counts in reshard(root, instance).items():
            if counts["written"] or counts["removed"]:
                print(f"{name}: {counts['read']} manifest(s) read, {counts['written']} written, {counts['removed']} removed")
    print("now re-materialize the infos assets (their tables carry the partition keys): no network is used")
    return 0
