"""The source assets the factory built, and the status of each of their partitions."""

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from encord_assets.operations.checks import NO_FAILED_ROWS
from encord_assets.sources.factory import SOURCE_ASSETS
from encord_assets.sources.registry import SOURCES, SourceSpec

FAILED_CHECK = AssetCheckExecutionRecordStatus.FAILED


def source_assets() -> list[tuple[SourceSpec, dg.AssetsDefinition]]:
    """Each registry entry with the asset the factory built for it (its partitions come from the asset)."""
    by_name = {asset.key.to_user_string(): asset for asset in SOURCE_ASSETS}
    return [(spec, by_name[spec.name]) for spec in SOURCES]


def rows_failed(instance: dg.DagsterInstance, asset: dg.AssetsDefinition) -> set[str]:
    """Partitions whose latest materialization has failed rows: its `no_failed_rows` check failed."""
    check_key = dg.AssetCheckKey(asset.key, NO_FAILED_ROWS)
    infos = instance.event_log_storage.get_asset_check_partition_info([check_key])
    return {info.partition_key for info in infos if info.latest_execution_status == FAILED_CHECK and info.is_current}


def partition_statuses(instance: dg.DagsterInstance, asset: dg.AssetsDefinition) -> dict[str, dg.AssetPartitionStatus | None]:
    """Every partition key of `asset` with its status (IN_PROGRESS covers queued and running runs).

    A partition materialized with failed rows counts as FAILED: its run recorded the outcomes,
    then its blocking check failed.
    """
    partitions_def = asset.partitions_def
    keys = partitions_def.get_partition_keys(dynamic_partitions_store=instance)
    statuses = dict(instance.get_status_by_partition(asset.key, keys, partitions_def) or dict.fromkeys(keys))
    for key in rows_failed(instance, asset):
        if statuses.get(key) == dg.AssetPartitionStatus.MATERIALIZED:
            statuses[key] = dg.AssetPartitionStatus.FAILED
    return statuses
