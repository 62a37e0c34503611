from datetime import datetime, timezone

import dagster as dg

from encord_assets.materialize import Materializer
from encord_assets_tests.operations.support import failing

SCHEDULE = "fill_image_coco_schedule"


def evaluate(materializer: Materializer, when: datetime) -> list[dg.RunRequest]:
    repository = materializer.defs.get_repository_def()
    schedule = repository.get_schedule_def(SCHEDULE)
    with dg.build_schedule_context(
        instance=materializer.instance, scheduled_execution_time=when, resources=materializer.defs.resources, repository_def=repository
    ) as context:
        result = schedule.evaluate_tick(context)
    return list(result.run_requests or [])


def test_the_schedule_requests_each_missing_or_failed_partition_once_capped(coco, sample_mirror, root, instance, operations_env):
    keys = coco.source_partitions("image_coco", "image")
    assert len(keys) >= 4
    done, broken = keys[0], keys[1]
    coco.run("image_coco", done, raise_on_error=True)
    failing(sample_mirror)
    assert not coco.run("image_coco", broken).success

    tick = datetime(2026, 1, 1, 3, tzinfo=timezone.utc)
    requests = evaluate(coco, tick)
    assert sorted(r.partition_key for r in requests) == sorted(keys[1:])  # missing and failed, not the materialized
    assert len({r.run_key for r in requests}) == len(requests)
    # the next tick asks again, with run keys of its own
    later = evaluate(coco, tick.replace(hour=4))
    assert not {r.run_key for r in later} & {r.run_key for r in requests}

    operations_env(ENCORD_MAX_REQUESTS_PER_TICK=2)
    capped = evaluate(Materializer(instance), tick)
    assert [r.partition_key for r in capped] == sorted(keys[1:])[:2]


def test_without_infos_tables_the_schedule_says_what_to_do_first(instance, operations_env):
    defs = Materializer(instance).defs
    repository = defs.get_repository_def()
    with dg.build_schedule_context(instance=instance, resources=defs.resources, repository_def=repository) as context:
        schedule = repository.get_schedule_def(SCHEDULE)
        result = schedule.evaluate_tick(context)
    assert not result.run_requests and "materialize infos_image first" in result.skip_message


def test_every_registry_source_gets_a_job_sensor_schedule_and_checks():
    from encord_assets.definitions import defs
    from encord_assets.sources.registry import SOURCES

    repository = defs.get_repository_def()
    checks = {key.to_user_string() for key in repository.asset_graph.asset_check_keys}
    for spec in SOURCES:
        assert repository.has_job(f"fill_{spec.name}")
        assert repository.has_sensor_def(f"retry_failed_{spec.name}")
        assert repository.get_schedule_def(f"fill_{spec.name}_schedule").default_status == dg.DefaultScheduleStatus.STOPPED
        assert {f"{spec.name}:files_match_manifest", f"{spec.name}:files_decode"} <= checks
    assert "infos_image:rows_accepted_and_routed" in checks
