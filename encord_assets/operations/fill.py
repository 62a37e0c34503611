"""Per source: a job that materializes its partitions, and a schedule that fills what is missing.

The job is what the retry sensor and the schedule target; launched from the UI (Jobs ->
fill_<source> -> Materialize / backfill) it lets a user pick partitions, or all missing and
failed ones. A schedule cannot launch a backfill, so it returns one run request per partition
that has infos rows and is missing or failed, at most `max_requests_per_tick` per tick.
"""

import os

import dagster as dg

from encord_assets.materialize import partitions_with_rows
from encord_assets.operations.partition_status import partition_statuses
from encord_assets.operations.retry_sensor import REQUESTED_BY_TAG
from encord_assets.operations.settings import Operations, switch
from encord_assets.sources.registry import SourceSpec
from encord_assets.store import DatasetStore

DEFAULT_FILL_CRON = "0 * * * *"
WANTED = (None, dg.AssetPartitionStatus.FAILED)  # never materialized, or the last run failed


def build_fill_job(spec: SourceSpec, asset: dg.AssetsDefinition):
    return dg.define_asset_job(
        f"fill_{spec.name}",
        selection=dg.AssetSelection.assets(asset.key),
        description=f"Materializes partitions of {spec.name} (with its checks); launch a backfill of missing/failed partitions from here.",
    )


def build_fill_schedule(spec: SourceSpec, asset: dg.AssetsDefinition, job) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"fill_{spec.name}_schedule",
        job=job,
        cron_schedule=os.environ.get("ENCORD_FILL_CRON", DEFAULT_FILL_CRON),
        default_status=dg.DefaultScheduleStatus.RUNNING if switch("ENCORD_FILL_SCHEDULE", False) else dg.DefaultScheduleStatus.STOPPED,
        description=f"Requests a run for every partition of {spec.name} that has rows and is missing or failed (capped per tick).",
    )
    def fill(context: dg.ScheduleEvaluationContext, operations: Operations, store: DatasetStore):
        statuses = partition_statuses(context.instance, asset)
        # a source whose rows come from its own tables (Open Images) has rows in every partition it declares
        with_rows = partitions_with_rows(store, spec.name, spec.modality) if spec.from_infos else list(statuses)
        if with_rows is None:
            return dg.SkipReason(f"no infos_{spec.modality} table under {store.uri('')}: materialize infos_{spec.modality} first")
        # A None key: rows whose partition the fetcher finds at run time, so any partition may hold them.
        candidates = list(statuses) if None in with_rows else with_rows
        wanted = [key for key in candidates if key in statuses and statuses[key] in WANTED]
        if not wanted:
            return dg.SkipReason(f"no partition of {spec.name} with rows is missing or failed (or they are running)")
        chosen = wanted[: operations.max_requests_per_tick]
        tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "manual"
        context.log.info(f"{len(wanted)} partition(s) of {spec.name} missing or failed; requesting {len(chosen)}")
        return [dg.RunRequest(partition_key=key, run_key=f"{key}@{tick}", tags={REQUESTED_BY_TAG: "fill_schedule"}) for key in chosen]

    return fill
