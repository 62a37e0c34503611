"""Open Images in a release: the placed images of the chosen classes become release files (labelled by
their class), and the boxes and masks of the placed annotation CSVs become its `boxes` and `masks` tables.

Open Images rows come from its own annotation CSVs, not from E-MM1 infos, so they are read from the Open
Images source's manifests: images (`images/<split>/<display name>_<mid>/<ImageID>.jpg`; an image of two
chosen classes is two files, one per class folder), masks and the per-(class, split) annotation CSV.
Splits keep upstream's names (`train`, `validation`, `test`); boxes keep upstream's coordinates, fractions
of the image size (exports scale them to the image they lay out).
"""

from __future__ import annotations

import io

from encord_assets.layout.paths import bookkeeping_key
from encord_assets.lazy import pl
from encord_assets.products.items import ON_DISK
from encord_assets.sources.openimages import class_folder, read_class_descriptions
from encord_assets.sources.registry import SOURCES
from encord_assets.store import DatasetStore

SOURCE_NAMES = [spec.name for spec in SOURCES if spec.fetcher == "openimages"]
# Open Images: "the images are listed as having a CC BY 2.0 license"; its annotations are CC BY 4.0
IMAGE_LICENSE = "CC BY 2.0"
BOX_COLUMNS = {
    "split": str, "target": str, "file_name": str, "label": str, "image_id": str,
    "x_min": float, "y_min": float, "x_max": float, "y_max": float,
}  # fmt: skip
MASK_COLUMNS = {**BOX_COLUMNS, "box_id": str, "mask": str, "mask_bytes": int, "mask_sha256": str}


def placed(store: DatasetStore) -> pl.LazyFrame | None:
    """Every file an Open Images manifest records as placed or present; None when there is none."""
    keys = [key for name in SOURCE_NAMES for key in store.find(bookkeeping_key("manifests", name)) if key.endswith(".parquet")]
    tables = store.local_tables(keys)
    if not tables:
        return None
    # every target has one partition: the path holds its class and split
    return pl.scan_parquet(tables).filter(pl.col("outcome").is_in(ON_DISK)).unique("target", keep="any")


def oid_folder(target: pl.Expr) -> pl.Expr:
    return target.str.split("/").list.first()


def class_names(store: DatasetStore, folders: list[str]) -> dict[str, str]:
    """Class folder (`<display name>_<mid>`) -> display name, and MID -> display name, from the class
    list `openimages_classes` wrote into each OID folder."""
    names = {}
    for folder in folders:
        data = store.read_bytes(f"{folder}/csv/class-descriptions-boxable.csv")
        for mid, name in read_class_descriptions(io.BytesIO(data)).iter_rows() if data else ():
            names[class_folder(name, mid)] = names[mid] = name
    return names


def files(store: DatasetStore, columns: tuple[str, ...]) -> pl.LazyFrame | None:
    """The placed Open Images images as release files (`columns`), each labelled by its class folder's class."""
    found = placed(store)
    if found is None:
        return None
    images = found.filter(pl.col("modality") == "image").with_columns(oid_folder(pl.col("target")).alias("save_folder"))
    folders = images.select(pl.col("save_folder").unique()).collect()["save_folder"].to_list()
    names = class_names(store, folders)
    class_key = pl.col("target").str.split("/").list.get(-2)
    return images.select(
        "split", "modality", "source", "source_dataset",
        pl.lit(IMAGE_LICENSE).alias("dataset_license"),
        pl.lit(None, pl.Int64).alias("encord_id"),
        "save_folder",
        pl.col("target").str.split("/").list.last().alias("file_name"),
        "target", "bytes", "sha256",
        pl.lit(None, pl.Int64).alias("encord_text_id"),
        pl.lit(None, pl.String).alias("caption"),
        pl.concat_list(class_key.replace_strict(names, default=class_key)).alias("labels"),
    ).select(columns)  # fmt: skip


def annotation_tables(store: DatasetStore, release_files: pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """(boxes, masks) of the release's Open Images images, from the placed annotation CSVs; masks only
    when placed. None when the release holds no Open Images image."""
    found = placed(store)
    chosen = release_files.filter(pl.col("source").is_in(SOURCE_NAMES)).select("split", "target")
    if found is None or chosen.select(pl.len()).collect().item() == 0:
        return None
    csvs = found.filter((pl.col("modality") == "annotations") & pl.col("target").str.ends_with("_annotations.csv")).select("split", "target").collect()
    masks_placed = found.filter(pl.col("modality") == "mask").select(pl.col("target").alias("mask"), pl.col("bytes").alias("mask_bytes"), pl.col("sha256").alias("mask_sha256"))
    names = class_names(store, sorted({target.split("/", 1)[0] for target in csvs["target"]}))
    rows = []
    for split, target in csvs.iter_rows():
        table = store.read_csv(target)
        if table is None or not table.height:
            continue
        folder = target.split("/", 1)[0]
        rows.append(
            table.select(
                pl.lit(split).alias("split"),
                pl.concat_str(pl.lit(f"{folder}/"), "image_path").alias("target"),
                pl.concat_str("ImageID", pl.lit(".jpg")).alias("file_name"),
                pl.col("LabelName").replace_strict(names, default=pl.col("LabelName")).alias("label"),
                pl.col("ImageID").alias("image_id"),
                *[pl.col(upstream).cast(pl.Float64, strict=False).alias(name) for name, upstream in (("x_min", "XMin"), ("y_min", "YMin"), ("x_max", "XMax"), ("y_max", "YMax"))],
                pl.col("BoxID").alias("box_id"),
                pl.when(pl.col("kind") == "mask").then(pl.concat_str(pl.lit(f"{folder}/"), "mask_path")).alias("mask"),
                "kind",
            )
        )
    annotations = (pl.concat(rows) if rows else pl.DataFrame(schema={**MASK_COLUMNS, "kind": pl.String}).drop("mask_bytes", "mask_sha256")).lazy().join(
        chosen, on=["split", "target"], how="semi"
    ).drop_nulls(["x_min", "y_min", "x_max", "y_max"])  # a box upstream left without coordinates has nothing to draw
    boxes = annotations.filter(pl.col("kind") == "box").select(list(BOX_COLUMNS)).sort("split", "target", "label", "x_min", "y_min")
    masks = annotations.filter(pl.col("kind") == "mask").join(masks_placed, on="mask").select(list(MASK_COLUMNS)).sort("split", "target", "mask")
    return boxes.collect(), masks.collect()
