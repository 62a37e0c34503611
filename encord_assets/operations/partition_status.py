"""Which partitions of a source asset exist, have rows, failed or are missing, from the instance and ROOT."""

from pathlib import Path

import dagster as dg
import polars as pl

from encord_assets.layout.paths import bookkeeping_dir
from encord_assets.sources.factory import SOURCE_ASSETS
from encord_assets.sources.registry import SOURCES, SourceSpec


def source_assets() -> list[tuple[SourceSpec, dg.AssetsDefinition]]:
    """Each registry entry with the asset the factory built for it (its partitions come from the asset)."""
    by_name = {asset.key.to_user_string(): asset for asset in SOURCE_ASSETS}
    return [(spec, by_name[spec.name]) for spec in SOURCES]


def partitions_with_rows(root: Path, source_name: str, modality: str) -> list[str] | None:
    """The partition keys that hold rows of a source, from its materialized infos tables (None: no table yet)."""
    tables = sorted((bookkeeping_dir(root) / "tables" / f"infos_{modality}").glob("*.parquet"))
    if not tables:
        return None
    keys = pl.scan_parquet(tables).filter(pl.col("source") == source_name).select("partition_key").unique().collect()
    return sorted(keys["partition_key"].to_list())


def partition_statuses(instance: dg.DagsterInstance, asset: dg.AssetsDefinition) -> dict[str, dg.AssetPartitionStatus | None]:
    """Every partition key of `asset` with its status (IN_PROGRESS covers queued and running runs)."""
    partitions_def = asset.partitions_def
    keys = partitions_def.get_partition_keys(dynamic_partitions_store=instance)
    return dict(instance.get_status_by_partition(asset.key, keys, partitions_def) or dict.fromkeys(keys))
