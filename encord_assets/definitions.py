"""The Dagster code location: infos assets, one asset per source, products, resources."""

import dagster as dg

from encord_assets.infos.assets import INFOS_ASSETS
from encord_assets.infos.files import SAMPLE_INFOS_DIR
from encord_assets.layout.io_manager import DatasetIOManager
from encord_assets.layout.tables import TableIOManager
from encord_assets.operations.definitions import operations_definitions
from encord_assets.products.captions import captions
from encord_assets.products.encord.asset import encord_manifest
from encord_assets.products.link_assets import LINK_ASSETS
from encord_assets.products.release_asset import release
from encord_assets.settings import InfosDir, default_encord_urls, default_store, setting
from encord_assets.sources.factory import SOURCE_ASSETS
from encord_assets.sources.resources import fetcher_resources


def build_defs() -> dg.Definitions:
    """Definitions whose optional settings come from the environment as it is now."""
    store = default_store()
    core = dg.Definitions(
        assets=[*INFOS_ASSETS, *SOURCE_ASSETS, captions, *LINK_ASSETS, release, encord_manifest],
        resources={
            "store": store,
            "infos_dir": InfosDir(path=setting("ENCORD_INFOS_DIR", str(SAMPLE_INFOS_DIR))),
            "dataset_io_manager": DatasetIOManager(store=store),
            "table_io_manager": TableIOManager(store=store),
            "encord_urls": default_encord_urls(),
            **fetcher_resources(),
        },
    )
    return dg.Definitions.merge(core, operations_definitions())


defs = build_defs()
