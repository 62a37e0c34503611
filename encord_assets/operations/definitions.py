"""Everything operational, generated from the registry: per source asset a fill job, a retry
sensor, a fill schedule and checks; a check per infos asset; the coverage report."""

import importlib

import dagster as dg

from encord_assets.infos.assets import INFOS_ASSETS
from encord_assets.operations.checks import build_infos_check, build_source_checks
from encord_assets.operations.fill import build_fill_job, build_fill_schedule
from encord_assets.operations.partition_status import source_assets
from encord_assets.operations.retry_sensor import build_retry_sensor
from encord_assets.operations.settings import operations_resource
from encord_assets.products.coverage_report import coverage_report


def own_checks(spec, asset: dg.AssetsDefinition) -> list[dg.AssetChecksDefinition]:
    """Checks a source with its own asset module adds (`build_checks(spec, asset)`), if any."""
    module = importlib.import_module(f"encord_assets.sources.{spec.fetcher}_assets")
    return module.build_checks(spec, asset) if hasattr(module, "build_checks") else []


def operations_definitions() -> dg.Definitions:
    jobs, sensors, schedules, checks = [], [], [], []
    for spec, asset in source_assets():
        job = build_fill_job(spec, asset)
        jobs.append(job)
        sensors.append(build_retry_sensor(spec, asset, job))
        schedules.append(build_fill_schedule(spec, asset, job))
        checks.extend(build_source_checks(spec, asset))
        if not spec.from_infos:
            checks.extend(own_checks(spec, asset))
    checks.extend(build_infos_check(infos_asset) for infos_asset in INFOS_ASSETS)
    return dg.Definitions(
        assets=[coverage_report],
        asset_checks=checks,
        jobs=jobs,
        sensors=sensors,
        schedules=schedules,
        resources={"operations": operations_resource()},
        # A run is one partition and its checks: separate step processes would only add start-up
        # time; runs, not steps, are what the queue and the pools run side by side.
        executor=dg.in_process_executor,
    )
