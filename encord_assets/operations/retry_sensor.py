"""One sensor over every source asset that re-requests partitions whose last run failed.

The cursor (JSON, stored by the daemon with each tick, so it survives restarts) keeps per
asset and partition the number of runs requested and when the last one was: attempt n+1 waits
an exponentially growing backoff, and after `max_attempts` the partition is exhausted: named in
the tick's log line and in ROOT/_encord_assets/exhausted/<asset>.json (read by the coverage
report) until a later run of it succeeds. Each tick logs one line saying what it did.

The cursor also keeps the storage id of the latest run failure it has seen. The first tick (or
one after the cursor was reset) reads every partition's status; later ticks read only the
statuses of the partitions the cursor tracks and of those whose run failed since (a partition
with failed rows fails its run too: its `no_failed_rows` check is blocking), so a tick costs
what changed, not how many partitions there are.
"""

import json
import time
from datetime import datetime, timezone
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType

from encord_assets.operations.exhausted import write_exhausted
from encord_assets.operations.partition_status import partition_statuses, statuses_of
from encord_assets.operations.policy import Operations
from encord_assets.settings import setting
from encord_assets.sources.registry import SourceSpec
from encord_assets.operations.tick_summary import tick_summary
from encord_assets.store import DatasetStore

FAILED = dg.AssetPartitionStatus.FAILED
IN_PROGRESS = dg.AssetPartitionStatus.IN_PROGRESS
ATTEMPT_TAG = "encord/retry_attempt"
REQUESTED_BY_TAG = "encord/requested_by"
PAGE = 500  # run failures read per query


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def plan_retries(
    statuses: dict[str, dg.AssetPartitionStatus | None], attempts: dict[str, dict], settings: Operations, now: float
) -> tuple[list[str], dict[str, dict], dict[str, dict]]:
    """(partitions to request now, attempts kept for the cursor, exhausted partitions)."""
    kept, due, exhausted = {}, [], {}
    for key, status in statuses.items():
        entry = attempts.get(key)
        if status == IN_PROGRESS and entry:
            kept[key] = entry
        if status != FAILED:
            continue  # succeeded (forget its attempts), never run, or running: nothing to request
        entry = entry or {"attempts": 0, "last_request": 0.0}
        kept[key] = entry
        if entry["attempts"] >= settings.max_attempts:
            exhausted[key] = entry
        elif now >= entry["last_request"] + settings.backoff(entry["attempts"]):
            due.append(key)
    # Partitions with fewer attempts first, so one bad partition cannot starve the others.
    due.sort(key=lambda key: (kept[key]["attempts"], key))
    return due[: settings.max_requests_per_tick], kept, exhausted


RETRY_SENSOR = "retry_failed_partitions"


def sensor_over_sources(name: str, sources, interval: str, on: str, description: str):
    """A sensor that may request a run of every source's fill job; interval and default status
    from settings read when the definitions load."""
    return dg.sensor(
        name=name,
        jobs=[job for _, _, job in sources],
        minimum_interval_seconds=setting(interval).read(),
        default_status=dg.DefaultSensorStatus.RUNNING if setting(on).read() else dg.DefaultSensorStatus.STOPPED,
        description=description,
    )


def failures_after(instance: dg.DagsterInstance, after: int | None, limit: int = 1) -> list:
    """Run-failure events after storage id `after`, oldest first (the latest one when `after` is None)."""
    records_filter = dg.RunStatusChangeRecordsFilter(DagsterEventType.RUN_FAILURE, after_storage_id=after)
    return list(instance.fetch_run_status_changes(records_filter, limit=limit, ascending=after is not None).records)


def failed_since(instance: dg.DagsterInstance, sources, after: int) -> tuple[dict[str, set[str]], int]:
    """Partitions per source whose run failed after event `after`, and the latest such event's storage id.

    A failed run's partitions are those it planned to materialize, whichever way it was launched
    (a fill_<source> job, the UI's asset job, a backfill).
    """
    source_of = {asset.key: spec.name for spec, asset, _ in sources}
    found: dict[str, set[str]] = {}
    while page := failures_after(instance, after, PAGE):
        for failure in page:
            planned = instance.get_records_for_run(failure.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
            for record in planned:
                event = record.event_log_entry.dagster_event
                if event.asset_key in source_of and event.partition:
                    found.setdefault(source_of[event.asset_key], set()).add(event.partition)
        after = page[-1].storage_id
    return found, after


def build_retry_sensor(sources: list[tuple[SourceSpec, dg.AssetsDefinition, Any]]) -> dg.SensorDefinition:
    @sensor_over_sources(
        RETRY_SENSOR,
        sources,
        interval="ENCORD_RETRY_SENSOR_INTERVAL_SECONDS",
        on="ENCORD_RETRY_SENSOR",
        description="Re-requests failed partitions of every source asset (its fill_<source> job) with exponential backoff, "
        "up to a maximum number of attempts per partition and of requests per tick.",
    )
    def retry_failed(context: dg.SensorEvaluationContext, operations: Operations, store: DatasetStore) -> dg.SensorResult:
        now = time.time()
        state = json.loads(context.cursor) if context.cursor else {}
        attempts = state.get("attempts", {})
        first_tick = "failures_after" not in state
        if first_tick:  # every partition's status; later ticks start from the latest failure seen now
            latest = failures_after(context.instance, None)
            failures, mark = None, latest[0].storage_id if latest else 0
        else:
            failures, mark = failed_since(context.instance, sources, state["failures_after"])
        cursor, due, waiting, exhausted_now, newly, looked = {}, [], 0, [], [], 0
        for spec, asset, job in sources:
            before = attempts.get(spec.name, {})
            if failures is None:
                statuses = partition_statuses(context.instance, asset)
            elif keys := set(before) | failures.get(spec.name, set()):
                statuses = statuses_of(context.instance, asset, keys)
            else:
                continue
            looked += len(statuses)
            asset_due, kept, exhausted = plan_retries(statuses, before, operations, now)
            if first_tick or set(exhausted) != {key for key, entry in before.items() if entry.get("exhausted")}:
                write_exhausted(
                    store,
                    spec.name,
                    {k: {"attempts": v["attempts"], "last_request": iso(v["last_request"])} for k, v in exhausted.items()},
                )
            for key in sorted(exhausted):
                if not before.get(key, {}).get("exhausted"):
                    newly.append(f"{spec.name} {key}")
                kept[key] = {**kept[key], "exhausted": True}
            exhausted_now.extend(f"{spec.name} {key}" for key in sorted(exhausted))
            waiting += len(kept) - len(exhausted) - len(asset_due)
            due.extend((kept[key]["attempts"], spec.name, key, job.name) for key in asset_due)
            if kept:
                cursor[spec.name] = kept
        # Partitions with fewer attempts first, so one bad partition cannot starve the others.
        due.sort()
        chosen, postponed = due[: operations.max_requests_per_tick], len(due[operations.max_requests_per_tick :])
        requests = []
        for attempt, name, key, job_name in chosen:
            cursor[name][key] = {"attempts": attempt + 1, "last_request": now}
            requests.append(
                dg.RunRequest(
                    job_name=job_name,
                    partition_key=key,
                    run_key=f"{name}:{key}#{attempt + 1}@{now:.0f}",
                    tags={ATTEMPT_TAG: str(attempt + 1), REQUESTED_BY_TAG: "retry_sensor"},
                )
            )
        summary = tick_summary(
            "retry",
            [(name, f"{key} #{attempt + 1}") for attempt, name, key, _ in chosen],
            waiting + postponed,
            "failed partition(s) waiting for backoff, a running run or the next tick",
            [
                f"{len(exhausted_now)} exhausted" + (f", newly: {', '.join(newly)}" if newly else ""),
                f"looked at {looked} partition(s)" + (" (first tick: all of them)" if first_tick else ""),
            ],
        )
        (context.log.warning if newly else context.log.info)(summary)
        state = json.dumps({"attempts": cursor, "failures_after": mark}, sort_keys=True)
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=state)
        return dg.SensorResult(skip_reason=summary, cursor=state)

    return retry_failed
