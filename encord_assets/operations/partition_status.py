"""The source assets the factory built, and the status of each of their partitions."""

import dagster as dg

from encord_assets.sources.factory import SOURCE_ASSETS
from encord_assets.sources.registry import SOURCES, SourceSpec


def source_assets() -> list[tuple[SourceSpec, dg.AssetsDefinition]]:
    """Each registry entry with the asset the factory built for it (its partitions come from the asset)."""
    by_name = {asset.key.to_user_string(): asset for asset in SOURCE_ASSETS}
    return [(spec, by_name[spec.name]) for spec in SOURCES]


def partition_statuses(instance: dg.DagsterInstance, asset: dg.AssetsDefinition) -> dict[str, dg.AssetPartitionStatus | None]:
    """Every partition key of `asset` with its status (IN_PROGRESS covers queued and running runs)."""
    partitions_def = asset.partitions_def
    keys = partitions_def.get_partition_keys(dynamic_partitions_store=instance)
    return dict(instance.get_status_by_partition(asset.key, keys, partitions_def) or dict.fromkeys(keys))
