import json
import threading
import time

import dagster as dg

from encord_assets.materialize import QUIET, Materializer
from encord_assets.operations.exhausted import read_exhausted
from encord_assets.operations.partition_status import partition_statuses, statuses_of
from encord_assets.operations.retry_sensor import RETRY_SENSOR, failures_after, plan_retries
from encord_assets.operations.policy import Operations
from encord_assets.products.coverage import problem_rows
from encord_assets.products.coverage_report import write_reports
from encord_assets.store import DatasetStore
from encord_assets_tests.operations.support import failing, run_partition


def evaluate(materializer, cursor=None) -> dg.SensorResult:
    defs = materializer.defs
    with dg.build_sensor_context(instance=materializer.instance, cursor=cursor, definitions=defs, resources=defs.resources) as context:
        return defs.get_repository_def().get_sensor_def(RETRY_SENSOR)(context)


def test_a_failed_partition_is_requested_once_and_its_retry_succeeds(coco, sample_mirror, root):
    key, other = coco.source_partitions("image_coco", "image")[:2]
    coco.run("image_coco", other, raise_on_error=True)
    failing(sample_mirror)
    assert not coco.run("image_coco", key).success

    first = evaluate(coco)
    assert [r.partition_key for r in first.run_requests] == [key]  # not the materialized one, nor any never run
    assert first.run_requests[0].tags["encord/retry_attempt"] == "1"
    assert first.run_requests[0].job_name == "fill_image_coco"
    assert json.loads(first.cursor)["attempts"]["image_coco"][key]["attempts"] == 1

    # The retry runs while the mirror stalls every request; meanwhile the sensor ticks again.
    sample_mirror.set_faults(1.0, kinds=("stall",), path_prefix="/coco/", stall_seconds=2)
    asset = coco.defs.get_assets_def("image_coco")
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("result", run_partition(coco, first.run_requests[0])))
    runner.start()
    try:
        status = None
        while runner.is_alive() and status != dg.AssetPartitionStatus.IN_PROGRESS:
            time.sleep(0.05)
            status = coco.instance.get_status_by_partition(asset.key, [key], asset.partitions_def)[key]
        assert status == dg.AssetPartitionStatus.IN_PROGRESS
        during = evaluate(coco, first.cursor)
        assert not during.run_requests  # backoff is 0 here: only the run in progress holds it back
    finally:
        sample_mirror.set_faults(0)  # the fault is removed: the run's next in-step retry succeeds
        runner.join()
    retried = outcome["result"]
    assert retried.success
    assert all(check.passed for check in retried.get_asset_check_evaluations())

    after = evaluate(coco, during.cursor)
    assert not after.run_requests
    assert json.loads(after.cursor)["attempts"] == {}  # success forgets the attempts


def test_attempts_are_capped_and_the_exhausted_partition_is_reported(coco, sample_mirror, root):
    key = coco.source_partitions("image_coco", "image")[0]
    failing(sample_mirror)
    assert not coco.run("image_coco", key).success

    cursor = None
    for attempt in (1, 2):  # ENCORD_RETRY_MAX_ATTEMPTS=2
        result = evaluate(coco, cursor)
        assert [(r.partition_key, r.tags["encord/retry_attempt"]) for r in result.run_requests] == [(key, str(attempt))]
        assert not run_partition(coco, result.run_requests[0]).success
        cursor = result.cursor

    last = evaluate(coco, cursor)
    assert not last.run_requests
    assert f"1 exhausted, newly: image_coco {key}" in last.skip_reason.skip_message
    assert "newly" not in evaluate(coco, last.cursor).skip_reason.skip_message  # said once
    store = DatasetStore(root=str(root))
    exhausted = read_exhausted(store)
    assert exhausted.select("asset", "partition", "attempts").rows() == [("image_coco", key, 2)]
    problems = problem_rows(store)
    assert problems.height and problems["partition_exhausted"].all()
    assert write_reports(store)["exhausted_partitions"]["partition"].to_list() == [key]


def requested(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [(r.partition_key, r.tags["encord/retry_attempt"]) for r in result.run_requests]


def message(result: dg.SensorResult) -> str:
    return result.skip_reason.skip_message if result.skip_reason else ""


def test_after_the_first_tick_only_tracked_partitions_and_new_failures_are_looked_at(coco, sample_mirror, instance, operations_env):
    operations_env(ENCORD_RETRY_BACKOFF_SECONDS=3600, ENCORD_MAX_REQUESTS_PER_TICK=1)
    materializer = Materializer(instance)
    a, b, c, never_run = sorted(coco.source_partitions("image_coco", "image"))[:4]
    failing(sample_mirror)
    assert not materializer.run("image_coco", a).success

    first = evaluate(materializer)
    assert requested(first) == [(a, "1")]  # the first tick reads every partition's status
    # The request is not run: a's failure is before the cursor from now on, and only its attempt
    # count in the cursor keeps its backoff.
    waits = evaluate(materializer, first.cursor)
    assert not waits.run_requests and "1 failed partition(s) waiting" in message(waits)
    assert "looked at 1 partition(s)" in message(waits)  # not every partition again

    assert not materializer.run("image_coco", b).success  # after the cursor, through the fill job
    launched_from_the_ui = dg.materialize(
        materializer.assets, selection=["image_coco"], partition_key=c, instance=instance,
        resources=materializer.defs.resources, run_config=QUIET, raise_on_error=False,
    )
    assert not launched_from_the_ui.success
    since = failures_after(instance, json.loads(first.cursor)["failures_after"], limit=10)
    assert len(since) == 2 and since == sorted(since, key=lambda event: event.storage_id)  # oldest first, pages go on from the last
    second = evaluate(materializer, first.cursor)
    assert requested(second) == [(b, "1")]  # capped at 1 per tick; a still in backoff
    third = evaluate(materializer, second.cursor)
    assert requested(third) == [(c, "1")]  # c's failure is before this cursor: the cursor tracked it
    assert "looked at 3 partition(s)" in message(evaluate(materializer, third.cursor))

    sample_mirror.set_faults(0)
    assert materializer.run("image_coco", b).success
    after = evaluate(materializer, third.cursor)
    assert not after.run_requests
    assert sorted(json.loads(after.cursor)["attempts"]["image_coco"]) == [a, c]  # b succeeded: forgotten
    assert "2 failed partition(s) waiting" in message(after) and "looked at 3 partition(s)" in message(after)

    # the few-keys status agrees with Dagster's own over every partition (never run, failed, materialized)
    asset = materializer.defs.get_assets_def("image_coco")
    everything = partition_statuses(instance, asset)
    assert everything[never_run] is None and everything[a] == dg.AssetPartitionStatus.FAILED
    assert statuses_of(instance, asset, set(everything)) == everything


def test_backoff_grows_exponentially_and_requests_are_capped_per_tick():
    settings = Operations(backoff_seconds=60, max_backoff_seconds=600, max_attempts=5, max_requests_per_tick=2)
    assert [settings.backoff(n) for n in range(6)] == [0, 60, 120, 240, 480, 600]
    failed = dg.AssetPartitionStatus.FAILED
    statuses = {"a": failed, "b": failed, "c": failed, "d": dg.AssetPartitionStatus.MATERIALIZED}
    attempts = {"a": {"attempts": 2, "last_request": 1000.0}, "d": {"attempts": 1, "last_request": 0.0}}
    due, kept, exhausted = plan_retries(statuses, attempts, settings, now=1000.0 + 119)
    assert due == ["b", "c"] and "d" not in kept and not exhausted  # "a" waits 120 s after its 2nd request
    due, _, _ = plan_retries({"a": failed}, attempts, settings, now=1000.0 + 120)
    assert due == ["a"]
    _, _, exhausted = plan_retries({"a": failed}, {"a": {"attempts": 5, "last_request": 0.0}}, settings, now=1e9)
    assert list(exhausted) == ["a"]
