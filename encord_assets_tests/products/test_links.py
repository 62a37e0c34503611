"""Groups, triplets and EShot categories on the bundled sample, through their Dagster assets."""

import json

import dagster as dg
import polars as pl

from encord_assets.infos.files import SAMPLE_INFOS_DIR
from encord_assets.layout.paths import table_key
from encord_assets.products.link_assets import LINK_ASSETS
from encord_assets.products.links import annotation_mapping
from encord_assets.infos.files import InfosDir
from encord_assets_tests.products.support import place_sample, sample_store

MISSING = ("e-mm1_100m_only/image/425259.jpg", "e-mm1_1m_only/video/z6E9CPcgYBw_16.mp4")


def run_products(store, instance) -> dict[str, dict]:
    result = dg.materialize(LINK_ASSETS, instance=instance, resources={"store": store, "infos_dir": InfosDir(path=str(SAMPLE_INFOS_DIR))})
    return {e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()} for e in result.get_asset_materialization_events()}


def test_counts_equal_a_direct_join(root, tmp_path, instance):
    store = sample_store(root)
    rows = place_sample(store, tmp_path / "staging", missing=MISSING)
    metadata = run_products(store, instance)

    present = rows.filter(~pl.col("target").is_in(MISSING)).select("split", "modality", "row_id")
    groups = pl.concat([pl.read_csv(p) for p in sorted(SAMPLE_INFOS_DIR.glob("e-mm1_100m/nn_*/data_groups.csv"))])
    hundred_m = present.filter(pl.col("split") == "e-mm1_100m")
    complete = groups
    for m in ("video", "audio", "image", "points"):
        complete = complete.join(hundred_m.filter(pl.col("modality") == m).select(pl.col("row_id").alias(f"encord_{m}_id")), on=f"encord_{m}_id", how="semi")
    assert metadata["groups"]["groups"] == groups.height == 8
    assert metadata["groups"]["complete_groups"] == complete.height == 6  # 1015 is missing, 7777 unknown
    assert metadata["groups"]["groups_missing_image"] == 1 and metadata["groups"]["unknown_points_ids"] == 1

    triplets = pl.read_csv(SAMPLE_INFOS_DIR / "e-mm1_1m" / "triplets.csv")
    one_m = present.filter(pl.col("split") == "e-mm1_1m")
    both = triplets.join(one_m, left_on=["paired_modality", "encord_paired_id"], right_on=["modality", "row_id"], how="semi").join(
        one_m, left_on=["annotated_modality", "encord_annotated_id"], right_on=["modality", "row_id"], how="semi"
    )
    assert metadata["triplets"]["complete_triplets"] == both.height == 3  # 5000 missing, 8888 unknown
    assert metadata["triplets"]["unknown_annotated_ids"] == 1

    categories = {c: ids for name in ("audio", "point") for c, ids in json.loads((SAMPLE_INFOS_DIR / "eshot" / f"category_to_{name}_ids.json").read_text()).items()}
    assert metadata["eshot_categories"]["categories"] == len(categories)
    assert metadata["eshot_categories"]["unknown_eshot_ids"] == 1  # piano's 99

    table = pl.read_parquet(root / table_key("groups", None))
    one = table.filter((pl.col("nn") == "nn_1") & (pl.col("nn_index") == 0) & (pl.col("encord_text_id") == 1035)).row(0, named=True)
    assert one["caption"] == "Two children build a snowman in a quiet backyard."
    target = rows.filter((pl.col("split") == "e-mm1_100m") & (pl.col("modality") == "image") & (pl.col("row_id") == 1016))["target"].item()
    assert one["image_path"] == str(root / target) and one["image_present"] and one["complete"]
    labels = pl.read_parquet(root / table_key("triplets", None)).select("annotation", "annotation_label").unique().sort("annotation").rows()
    assert labels == [(1, "Good Match"), (2, "Partial Match"), (3, "Bad Match")]


def test_annotation_mapping_header_is_discovered(tmp_path):
    path = tmp_path / "annotation_mapping.csv"
    path.write_text("meaning,code\nGood Match,1\nPartial Match,2\nBad Match,3\n")
    assert annotation_mapping(path).rows() == [(1, "Good Match"), (2, "Partial Match"), (3, "Bad Match")]


def test_old_triplet_column_names_are_accepted(root, tmp_path, instance):
    store = sample_store(root)
    place_sample(store, tmp_path / "staging")
    infos = tmp_path / "infos"
    (infos / "e-mm1_1m").mkdir(parents=True)
    old = (SAMPLE_INFOS_DIR / "e-mm1_1m" / "triplets.csv").read_text().replace("paired_modality,annotated_modality", "modality_1,modality_2", 1)
    (infos / "e-mm1_1m" / "triplets.csv").write_text(old)
    result = dg.materialize(LINK_ASSETS, instance=instance, resources={"store": store, "infos_dir": InfosDir(path=str(infos))}, selection=["triplets"])
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["complete_triplets"].value == 4
