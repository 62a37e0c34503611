"""The Dagster code location: infos assets, one asset per source, products, resources."""

import dagster as dg

from encord_assets.infos.assets import INFOS_ASSETS
from encord_assets.infos.files import InfosDir
from encord_assets.layout.io_manager import DatasetIOManager
from encord_assets.layout.tables import TableIOManager
from encord_assets.operations.definitions import operations_definitions
from encord_assets.products.captions import captions
from encord_assets.products.encord.asset import encord_manifest
from encord_assets.products.encord.urls import EncordUrls
from encord_assets.products.link_assets import LINK_ASSETS
from encord_assets.products.release_asset import release
from encord_assets.settings import resource_config
from encord_assets.sources.factory import SOURCE_ASSETS
from encord_assets.sources.openimages_assets import OPENIMAGES_TABLE_ASSETS
from encord_assets.sources.resources import fetcher_resources
from encord_assets.store import default_store


def build_defs() -> dg.Definitions:
    """Definitions whose optional settings come from the environment as it is now."""
    store = default_store()
    core = dg.Definitions(
        assets=[*INFOS_ASSETS, *SOURCE_ASSETS, *OPENIMAGES_TABLE_ASSETS, captions, *LINK_ASSETS, release, encord_manifest],
        resources={
            "store": store,
            "infos_dir": InfosDir(**resource_config("infos_dir")),
            "dataset_io_manager": DatasetIOManager(store=store),
            "table_io_manager": TableIOManager(store=store),
            "encord_urls": EncordUrls(**resource_config("encord_urls")),
            **fetcher_resources(),
        },
    )
    return dg.Definitions.merge(core, operations_definitions())


defs = build_defs()
