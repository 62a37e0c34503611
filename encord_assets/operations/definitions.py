"""Everything operational, generated from the registry: per source asset a fill job and checks;
one retry sensor and one fill sensor over all of them; a check per infos asset; the coverage report."""

import importlib

import dagster as dg

from encord_assets.infos.assets import INFOS_ASSETS
from encord_assets.operations.checks import build_infos_check, build_source_checks
from encord_assets.operations.fill import build_fill_job, build_fill_sensor
from encord_assets.operations.partition_status import source_assets
from encord_assets.operations.retry_sensor import build_retry_sensor
from encord_assets.operations.policy import operations_resource
from encord_assets.products.coverage_report import coverage_report


def own_checks(spec, asset: dg.AssetsDefinition) -> list[dg.AssetChecksDefinition]:
    """Checks a source with its own asset module adds (`build_checks(spec, asset)`), if any."""
    module = importlib.import_module(f"encord_assets.sources.{spec.fetcher}_assets")
    return module.build_checks(spec, asset) if hasattr(module, "build_checks") else []


def operations_definitions() -> dg.Definitions:
    sources = [(spec, asset, build_fill_job(spec, asset)) for spec, asset in source_assets()]
    checks = [check for spec, asset, _ in sources for check in build_source_checks(spec, asset)]
    checks.extend(check for spec, asset, _ in sources if not spec.from_infos for check in own_checks(spec, asset))
    checks.extend(build_infos_check(infos_asset) for infos_asset in INFOS_ASSETS)
    return dg.Definitions(
        assets=[coverage_report],
        asset_checks=checks,
        jobs=[job for _, _, job in sources],
        sensors=[build_retry_sensor(sources), build_fill_sensor(sources)],
        resources={"operations": operations_resource()},
        # A run is one partition and its checks: separate step processes would only add start-up
        # time; runs, not steps, are what the queue and the pools run side by side.
        executor=dg.in_process_executor,
    )
