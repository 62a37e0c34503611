"""One sensor per source asset that re-requests partitions whose last run failed.

The cursor (JSON, stored by the daemon with each tick, so it survives restarts) keeps per
partition the number of runs requested and when the last one was: attempt n+1 waits an
exponentially growing backoff, and after `max_attempts` the partition is exhausted: listed in
the sensor log and in ROOT/_encord_assets/exhausted/<asset>.json (read by the coverage report)
until a later run of it succeeds.
"""

import json
import time
from datetime import datetime, timezone

import dagster as dg

from encord_assets.operations.exhausted import write_exhausted
from encord_assets.operations.partition_status import partition_statuses
from encord_assets.operations.policy import Operations
from encord_assets.settings import setting
from encord_assets.sources.registry import SourceSpec
from encord_assets.store import DatasetStore

FAILED = dg.AssetPartitionStatus.FAILED
IN_PROGRESS = dg.AssetPartitionStatus.IN_PROGRESS
ATTEMPT_TAG = "encord/retry_attempt"
REQUESTED_BY_TAG = "encord/requested_by"


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


def build_retry_sensor(spec: SourceSpec, asset: dg.AssetsDefinition, job) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"retry_failed_{spec.name}",
        job=job,
        minimum_interval_seconds=setting("ENCORD_RETRY_SENSOR_INTERVAL_SECONDS").read(),
        default_status=dg.DefaultSensorStatus.RUNNING if setting("ENCORD_RETRY_SENSOR").read() else dg.DefaultSensorStatus.STOPPED,
        description=f"Re-requests failed partitions of {spec.name} with exponential backoff, up to a maximum number of attempts.",
    )
    def retry_failed(context: dg.SensorEvaluationContext, operations: Operations, store: DatasetStore) -> dg.SensorResult:
        now = time.time()
        attempts = json.loads(context.cursor)["attempts"] if context.cursor else {}
        due, kept, exhausted = plan_retries(partition_statuses(context.instance, asset), attempts, operations, now)

        newly = sorted(exhausted.keys() - {k for k, v in attempts.items() if v["attempts"] >= operations.max_attempts})
        for key in newly:
            context.log.warning(f"{spec.name} partition {key} failed {exhausted[key]['attempts']} retries: giving up")
        if exhausted:
            context.log.info(f"{len(exhausted)} exhausted partition(s) of {spec.name}: {', '.join(sorted(exhausted))}")
        write_exhausted(
            store, spec.name, {k: {**v, "last_request": iso(v["last_request"])} for k, v in exhausted.items()}
        )

        requests = []
        for key in due:
            attempt = kept[key]["attempts"] + 1
            kept[key] = {"attempts": attempt, "last_request": now}
            requests.append(
                dg.RunRequest(
                    partition_key=key,
                    run_key=f"{key}#{attempt}@{now:.0f}",
                    tags={ATTEMPT_TAG: str(attempt), REQUESTED_BY_TAG: "retry_sensor"},
                )
            )
        cursor = json.dumps({"attempts": kept}, sort_keys=True)
        if requests:
            context.log.info(f"requesting {len(requests)} retry run(s) of {spec.name}: {', '.join(due)}")
            return dg.SensorResult(run_requests=requests, cursor=cursor)
        waiting = len(kept) - len(exhausted)
        return dg.SensorResult(
            skip_reason=f"no failed partition due ({waiting} waiting or running, {len(exhausted)} exhausted)", cursor=cursor
        )

    return retry_failed
