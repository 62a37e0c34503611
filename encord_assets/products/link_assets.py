"""Assets of the E-MM1 linking files, over everything placed: groups, triplets, EShot categories."""

from pathlib import Path

import dagster as dg

from encord_assets.layout.paths import table_key
from encord_assets.products import items as item_tables
from encord_assets.products import links
from encord_assets.infos.files import InfosDir
from encord_assets.lazy import pl
from encord_assets.sources.registry import SOURCES
from encord_assets.store import DatasetStore

PRODUCTS = {
    "groups": (
        links.groups, links.group_coverage,
        "Every group of e-mm1_100m/nn_*/data_groups.csv with its caption and each member's path and presence; "
        "complete groups and groups missing each modality in the metadata.",
    ),
    "triplets": (
        links.triplets, links.triplet_coverage,
        "Every triplet of e-mm1_1m/triplets.csv with its caption, annotation label (annotation_mapping.csv) and the "
        "paired and annotated items' paths and presence.",
    ),
    "eshot_categories": (
        # EShot has no captions
        lambda infos, items, captions, base: links.eshot_categories(infos, items, base), links.category_coverage,
        "EShot's category_to_audio_ids.json and category_to_point_ids.json: (category, modality, eshot_id) with "
        "each item's path and presence.",
    ),
}
DEPS = [f"infos_{m}" for m in ("video", "audio", "image", "points", "text")] + [spec.name for spec in SOURCES]


def build_link_asset(name: str) -> dg.AssetsDefinition:
    build, coverage, description = PRODUCTS[name]

    @dg.asset(name=name, group_name="products", kinds={"polars", "parquet"}, deps=DEPS, description=description)
    def link_asset(context: dg.AssetExecutionContext, store: DatasetStore, infos_dir: InfosDir) -> dg.MaterializeResult:
        frame = build(Path(infos_dir.path), item_tables.items(store), item_tables.captions(store), store.uri(""))
        key = table_key(name, None)
        if frame is None:
            context.log.warning(f"{infos_dir.path} has no file for {name}")
            store.delete(key)
            return dg.MaterializeResult(metadata={"rows": 0})
        store.write(key, frame.sink_parquet)
        counts = coverage(pl.scan_parquet(store.local_tables([key])))
        context.log.info(f"{name}: {counts}")
        return dg.MaterializeResult(metadata={**counts, "path": dg.MetadataValue.path(store.uri(key))})

    return link_asset


LINK_ASSETS = [build_link_asset(name) for name in PRODUCTS]
