"""Per source a job that materializes its partitions; one sensor that fills what is missing.

The job is what the retry and fill sensors target; launched from the UI (Jobs ->
fill_<source> -> Materialize / backfill) it lets a user pick partitions, or all missing and
failed ones. Filling is a sensor, not a schedule: a Dagster schedule targets one job, and each
source's job has its own partitions. It ticks every `ENCORD_FILL_INTERVAL_SECONDS`, requests one
run per partition that has infos rows and is missing or failed, at most `max_requests_per_tick`
per tick over all sources, and logs one line per tick. Reading a source's partition statuses
costs about a second at the largest assets, so a tick goes round-robin: it starts at the source
its cursor names and moves on to the next one only while it has run for less than
`fill_tick_seconds` and has requests left.
"""

import json
import time
from typing import Any

import dagster as dg

from encord_assets.operations.partition_status import partition_statuses
from encord_assets.operations.policy import Operations
from encord_assets.operations.retry_sensor import REQUESTED_BY_TAG, sensor_over_sources
from encord_assets.operations.tick_summary import tick_summary
from encord_assets.sources.partitions import partitions_with_rows
from encord_assets.sources.registry import SourceSpec
from encord_assets.store import DatasetStore

FILL_SENSOR = "fill_missing_partitions"
WANTED = (None, dg.AssetPartitionStatus.FAILED)  # never materialized, or the last run failed


def build_fill_job(spec: SourceSpec, asset: dg.AssetsDefinition):
    return dg.define_asset_job(
        f"fill_{spec.name}",
        selection=dg.AssetSelection.assets(asset.key),
        description=f"Materializes partitions of {spec.name} (with its checks); launch a backfill of missing/failed partitions from here.",
    )


def wanted_partitions(instance: dg.DagsterInstance, store: DatasetStore, spec: SourceSpec, asset: dg.AssetsDefinition) -> list[str] | None:
    """Partitions of `spec` with infos rows that are missing or failed (None: no infos table yet)."""
    # a source whose rows come from its own tables (Open Images) has rows in every partition it declares
    with_rows = partitions_with_rows(store, spec.name, spec.modality) if spec.from_infos else [None]
    if with_rows is None:
        return None
    statuses = partition_statuses(instance, asset)
    # A None key: rows whose partition the fetcher finds at run time, so any partition may hold them.
    candidates = list(statuses) if None in with_rows else with_rows
    return [key for key in candidates if key in statuses and statuses[key] in WANTED]


def build_fill_sensor(sources: list[tuple[SourceSpec, dg.AssetsDefinition, Any]]) -> dg.SensorDefinition:
    @sensor_over_sources(
        FILL_SENSOR,
        sources,
        interval="ENCORD_FILL_INTERVAL_SECONDS",
        on="ENCORD_FILL_SENSOR",
        description="Requests a run for every partition of every source asset that has rows and is missing or failed "
        "(capped per tick).",
    )
    def fill(context: dg.SensorEvaluationContext, operations: Operations, store: DatasetStore) -> dg.SensorResult:
        started, tick = time.monotonic(), f"{time.time():.0f}"
        names = [spec.name for spec, _, _ in sources]
        first = json.loads(context.cursor).get("next") if context.cursor else None
        start = names.index(first) if first in names else 0
        wanted, no_infos, looked = [], [], 0
        for spec, asset, job in sources[start:] + sources[:start]:
            if looked and (len(wanted) >= operations.max_requests_per_tick or time.monotonic() - started >= operations.fill_tick_seconds):
                break
            looked += 1
            keys = wanted_partitions(context.instance, store, spec, asset)
            if keys is None:
                no_infos.append(f"infos_{spec.modality}")
            wanted.extend((spec.name, key, job.name) for key in keys or [])
        after = names[(start + looked) % len(names)]
        chosen = wanted[: operations.max_requests_per_tick]
        summary = tick_summary(
            "fill",
            [(name, key) for name, key, _ in chosen],
            len(wanted) - len(chosen),
            "more partition(s) with rows missing or failed waiting for the next tick",
            [f"looked at {looked} of {len(names)} source(s) from {names[start]}, next tick from {after}"]
            + ([f"no table yet: materialize {', '.join(sorted(set(no_infos)))} first"] if no_infos else []),
        )
        context.log.info(summary)
        requests = [
            dg.RunRequest(job_name=job_name, partition_key=key, run_key=f"{name}:{key}@{tick}", tags={REQUESTED_BY_TAG: "fill_sensor"})
            for name, key, job_name in chosen
        ]
        cursor = json.dumps({"next": after})
        return dg.SensorResult(run_requests=requests, cursor=cursor) if requests else dg.SensorResult(skip_reason=summary, cursor=cursor)

    return fill
