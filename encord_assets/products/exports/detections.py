"""Boxes and masks of a release, for the YOLO and COCO exports.

A release holds detections when it holds Open Images images (products/openimages_items.py): its `boxes`
table has one row per box, `split, target, file_name, label, image_id, x_min, y_min, x_max, y_max` in
fractions of the image size, and its `masks` table one row per placed mask, the same columns plus
`box_id, mask` (the mask's target), `mask_bytes, mask_sha256`. E-MM1's own sources have none.

Images are laid out once per split and file name under `<split>/images/` (an image of two chosen classes
is in both class folders of ROOT, one image here with the boxes of both); boxes are scaled to the laid-out
image's size.
"""

from dataclasses import dataclass
from pathlib import Path

import polars as pl
from PIL import Image

from encord_assets.products.pull import lay_out
from encord_assets.products.releases import ReleaseError, release_table
from encord_assets.store import DatasetStore


@dataclass
class Detections:
    # per split, a supervision DetectionDataset over the laid-out images
    datasets: dict
    # masks with their laid-out image: `path, width, height` and the box in pixels
    masks: pl.DataFrame
    classes: list[str]
    counts: dict
    problems: list[tuple[str, str]]


def release_detections(store: DatasetStore, name: str, fmt: str, files: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(boxes, masks) of the release's `files`; a clear error for a release without detections."""
    boxes, masks = release_table(store, name, "boxes"), release_table(store, name, "masks")
    if boxes is None or masks is None:
        modalities = ", ".join(sorted(files.select(pl.col("modality").unique()).collect()["modality"].to_list())) or "no files"
        raise ReleaseError(
            f"release {name!r} holds no boxes or masks ({modalities}): the {fmt.upper()} export needs a release "
            f"with detections (Open Images); use folders, csv, spacy_ner or darwin_json"
        )
    chosen = files.select("split", "target").unique()
    return boxes.join(chosen, on=["split", "target"], how="semi"), masks.join(chosen, on=["split", "target"], how="semi")


def image_size(path: str) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.size
    except OSError:
        return None


def in_pixels(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        (pl.col("x_min") * pl.col("width")).alias("x_min"), (pl.col("x_max") * pl.col("width")).alias("x_max"),
        (pl.col("y_min") * pl.col("height")).alias("y_min"), (pl.col("y_max") * pl.col("height")).alias("y_max"),
    )  # fmt: skip


def detection_datasets(store: DatasetStore, name: str, fmt: str, files: pl.LazyFrame, out: Path) -> Detections:
    """The release's images with boxes or masks laid out (checked, linked or copied) under
    out/<split>/images/, and per split a DetectionDataset of their boxes."""
    import numpy as np
    import supervision as sv

    boxes, masks = (frame.collect() for frame in release_detections(store, name, fmt, files))
    annotated = pl.concat([boxes.select("split", "target"), masks.select("split", "target")]).unique()
    images = (
        files.filter(pl.col("modality") == "image")
        .join(annotated.lazy(), on=["split", "target"], how="semi")
        .select(pl.concat_str("split", pl.lit("/images/"), "file_name").alias("dest"), "target", "sha256", "split", "file_name")
        .sort("dest", "target")
        .unique("dest", keep="first", maintain_order=True)
        .collect()
    )
    counts, problems = lay_out(store, out, images.lazy(), force=False)
    if problems:
        raise ReleaseError(f"{len(problems)} image(s) of release {name!r} do not match it in ROOT, for example {problems[0]}")
    paths = [str(out / dest) for dest in images["dest"]]
    sizes = [image_size(path) for path in paths]
    problems = [(target, "not a decodable image (left out)") for target, size in zip(images["target"], sizes, strict=True) if size is None]
    images = images.with_columns(
        pl.Series("path", paths, pl.String),
        pl.Series("width", [s[0] if s else None for s in sizes], pl.Int64),
        pl.Series("height", [s[1] if s else None for s in sizes], pl.Int64),
    ).filter(pl.col("width").is_not_null())
    laid = images.select("split", "file_name", "path", "width", "height")
    # by file name: the boxes of an image's other class folder go to the one image laid out
    boxes, masks = (in_pixels(frame.join(laid, on=["split", "file_name"])) for frame in (boxes, masks))
    classes = sorted(set(boxes["label"]) | set(masks["label"]))
    class_ids = {label: n for n, label in enumerate(classes)}
    datasets = {}
    for (split,), split_images in images.group_by("split", maintain_order=True):
        annotations = {path: sv.Detections.empty() for path in split_images["path"]}
        for (path,), image_boxes in boxes.filter(pl.col("split") == split).group_by("path"):
            annotations[path] = sv.Detections(
                xyxy=image_boxes.select("x_min", "y_min", "x_max", "y_max").to_numpy().astype(np.float32),
                class_id=np.array([class_ids[label] for label in image_boxes["label"]], dtype=int),
            )
        datasets[split] = sv.DetectionDataset(classes=classes, images=list(annotations), annotations=annotations)
    return Detections(datasets, masks, classes, {"images": images.height, "boxes": boxes.height, **counts}, problems)
