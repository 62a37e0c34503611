import json

import dagster as dg

from encord_assets.materialize import Materializer
from encord_assets.operations.fill import FILL_SENSOR
from encord_assets.operations.retry_sensor import RETRY_SENSOR
from encord_assets_tests.operations.support import failing


def evaluate(materializer: Materializer, cursor: str | None = None) -> dg.SensorResult:
    defs = materializer.defs
    with dg.build_sensor_context(instance=materializer.instance, cursor=cursor, definitions=defs, resources=defs.resources) as context:
        return defs.get_repository_def().get_sensor_def(FILL_SENSOR)(context)


def test_the_fill_sensor_requests_each_missing_or_failed_partition_once_capped(coco, sample_mirror, root, instance, operations_env):
    keys = coco.source_partitions("image_coco", "image")
    assert len(keys) >= 4
    done, broken = keys[0], keys[1]
    coco.run("image_coco", done, raise_on_error=True)
    failing(sample_mirror)
    assert not coco.run("image_coco", broken).success

    operations_env(ENCORD_MAX_REQUESTS_PER_TICK=100)
    # only image infos are materialized: sources of other modalities have nothing to fill yet
    requests = evaluate(Materializer(instance)).run_requests
    assert {r.job_name.removeprefix("fill_") for r in requests} <= {"image_coco", "image_imagenet", "image_flickr30k", "image_googleconceptualcaptions"}
    coco_requests = [r for r in requests if r.job_name == "fill_image_coco"]
    assert sorted(r.partition_key for r in coco_requests) == sorted(keys[1:])  # missing and failed, not the materialized
    assert len({r.run_key for r in requests}) == len(requests)

    operations_env(ENCORD_MAX_REQUESTS_PER_TICK=2)
    capped = evaluate(Materializer(instance))
    assert [(r.job_name, r.partition_key) for r in capped.run_requests] == [("fill_image_coco", key) for key in sorted(keys[1:])[:2]]
    assert json.loads(capped.cursor) == {"next": "video_internvid"}  # the cap is reached: the next source next tick


def test_a_tick_out_of_time_leaves_the_next_sources_to_the_next_ticks_round_robin(coco, instance, operations_env):
    from encord_assets.sources.registry import SOURCES

    operations_env(ENCORD_FILL_TICK_SECONDS=0)  # each tick looks at one source
    materializer = Materializer(instance)
    names = [spec.name for spec in SOURCES]
    start = names.index("audio_wavcaps")
    cursor, looked_at = json.dumps({"next": names[start]}), []
    for _ in names:
        result = evaluate(materializer, cursor)
        looked_at.append(json.loads(cursor)["next"])
        assert {r.job_name for r in result.run_requests} <= {f"fill_{looked_at[-1]}"}  # that source's only
        assert result.run_requests or looked_at[-1] != "image_coco"
        if not result.run_requests:
            assert f"looked at 1 of {len(names)} source(s) from {looked_at[-1]}" in result.skip_reason.skip_message
        cursor = result.cursor
    assert looked_at == names[start:] + names[:start] and json.loads(cursor)["next"] == names[start]  # each once, then around


def test_without_infos_tables_the_fill_sensor_says_what_to_do_first(instance, operations_env):
    result = evaluate(Materializer(instance))
    assert not result.run_requests and "materialize infos_audio, infos_image, infos_points, infos_video first" in result.skip_reason.skip_message


def test_every_registry_source_gets_a_job_and_checks_and_one_sensor_of_each_kind_covers_them_all():
    from encord_assets.definitions import defs
    from encord_assets.sources.registry import SOURCES

    repository = defs.get_repository_def()
    checks = {key.to_user_string() for key in repository.asset_graph.asset_check_keys}
    assert {sensor.name for sensor in repository.sensor_defs} == {RETRY_SENSOR, FILL_SENSOR} and not repository.schedule_defs
    assert repository.get_sensor_def(FILL_SENSOR).default_status == dg.DefaultSensorStatus.STOPPED
    for spec in SOURCES:
        assert repository.has_job(f"fill_{spec.name}")
        for sensor in (RETRY_SENSOR, FILL_SENSOR):
            assert f"fill_{spec.name}" in {job.name for job in repository.get_sensor_def(sensor).jobs}
        assert {f"{spec.name}:files_match_manifest", f"{spec.name}:files_decode"} <= checks
    assert "infos_image:rows_accepted_and_routed" in checks
