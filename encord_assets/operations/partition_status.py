"""The source assets the factory built, and the status of their partitions: of all of them, or of a
few keys read from the event log without listing the asset's partitions."""

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.dagster_run import FINISHED_STATUSES

from encord_assets.operations.checks import NO_FAILED_ROWS
from encord_assets.sources.factory import SOURCE_ASSETS
from encord_assets.sources.registry import SOURCES, SourceSpec

FAILED_CHECK = AssetCheckExecutionRecordStatus.FAILED
Status = dg.AssetPartitionStatus


def source_assets() -> list[tuple[SourceSpec, dg.AssetsDefinition]]:
    """Each registry entry with the asset the factory built for it (its partitions come from the asset)."""
    by_name = {asset.key.to_user_string(): asset for asset in SOURCE_ASSETS}
    return [(spec, by_name[spec.name]) for spec in SOURCES]


def rows_failed(instance: dg.DagsterInstance, asset: dg.AssetsDefinition, keys: list[str] | None = None) -> set[str]:
    """Partitions (of `keys`, or all) whose latest materialization has failed rows: its `no_failed_rows` check failed."""
    check_key = dg.AssetCheckKey(asset.key, NO_FAILED_ROWS)
    infos = instance.event_log_storage.get_asset_check_partition_info([check_key], partition_keys=keys)
    return {info.partition_key for info in infos if info.latest_execution_status == FAILED_CHECK and info.is_current}


def with_failed_rows(instance: dg.DagsterInstance, asset: dg.AssetsDefinition, statuses: dict, keys: list[str] | None = None) -> dict:
    """A partition materialized with failed rows counts as FAILED: its run recorded the outcomes,
    then its blocking check failed."""
    for key in rows_failed(instance, asset, keys):
        if statuses.get(key) == Status.MATERIALIZED:
            statuses[key] = Status.FAILED
    return statuses


def partition_statuses(instance: dg.DagsterInstance, asset: dg.AssetsDefinition) -> dict[str, Status | None]:
    """Every partition key of `asset` with its status (IN_PROGRESS covers queued and running runs)."""
    partitions_def = asset.partitions_def
    keys = partitions_def.get_partition_keys(dynamic_partitions_store=instance)
    statuses = dict(instance.get_status_by_partition(asset.key, keys, partitions_def) or dict.fromkeys(keys))
    return with_failed_rows(instance, asset, statuses)


def statuses_of(instance: dg.DagsterInstance, asset: dg.AssetsDefinition, keys: set[str]) -> dict[str, Status | None]:
    """The status of a few partitions, as `partition_statuses` reports them, from the latest planned
    and materialization events of just those keys and the runs that planned them."""
    storage = instance.event_log_storage
    materialized = storage.get_latest_storage_id_by_partition(asset.key, DagsterEventType.ASSET_MATERIALIZATION, set(keys))
    planned = storage.get_latest_storage_id_by_partition(asset.key, DagsterEventType.ASSET_MATERIALIZATION_PLANNED, set(keys))
    # a run planned the partition after its latest materialization: that run decides
    pending = [storage_id for key, storage_id in planned.items() if storage_id > materialized.get(key, -1)]
    runs, run_of = {}, {}
    if pending:
        planned_filter = dg.EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION_PLANNED, asset_key=asset.key, storage_ids=pending)
        run_of = {record.partition_key: record.run_id for record in storage.get_event_records(planned_filter)}
        for record in instance.get_run_records(dg.RunsFilter(run_ids=sorted(set(run_of.values())))):
            runs[record.dagster_run.run_id] = record.dagster_run.status
    statuses: dict[str, Status | None] = {}
    for key in keys:
        run_status = runs.get(run_of.get(key))
        if run_status is not None and run_status not in FINISHED_STATUSES:
            statuses[key] = Status.IN_PROGRESS
        elif run_status == dg.DagsterRunStatus.FAILURE:
            statuses[key] = Status.FAILED
        else:  # no run since the latest materialization, or one that ended without failing
            statuses[key] = Status.MATERIALIZED if key in materialized else None
    return with_failed_rows(instance, asset, statuses, sorted(keys))
