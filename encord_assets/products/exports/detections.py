"""Boxes and masks of a release, for the YOLO and COCO exports.

A release holds detections when a source with boxes (Open Images) wrote a `boxes` table into it, one row
per box: `split, target, file_name, label, x_min, y_min, x_max, y_max` (pixels) and the image's `width,
height`. E-MM1's own sources have none.
"""

from pathlib import Path

import polars as pl

from encord_assets.products.pull import lay_out
from encord_assets.products.releases import ReleaseError, release_table
from encord_assets.store import DatasetStore


def release_boxes(store: DatasetStore, name: str, fmt: str, files: pl.LazyFrame) -> pl.LazyFrame:
    boxes = release_table(store, name, "boxes")
    if boxes is None:
        modalities = ", ".join(sorted(files.select(pl.col("modality").unique()).collect()["modality"].to_list())) or "no files"
        raise ReleaseError(
            f"release {name!r} holds no boxes or masks ({modalities}): the {fmt.upper()} export needs a release "
            f"with detections (Open Images); use folders, csv, spacy_ner or darwin_json"
        )
    return boxes


def detection_datasets(store: DatasetStore, name: str, fmt: str, files: pl.LazyFrame, out: Path) -> tuple[dict, dict]:
    """Per split, a supervision DetectionDataset over the release's images laid out (checked, linked or
    copied) under out/<split>/images/; and the outcome counts of laying them out."""
    import numpy as np
    import supervision as sv

    boxes = release_boxes(store, name, fmt, files).join(files.select("split", "target").unique(), on=["split", "target"], how="semi").collect()
    classes = sorted(boxes["label"].unique().to_list())
    class_ids = {label: n for n, label in enumerate(classes)}
    images = (
        files.filter(pl.col("modality") == "image")
        .join(boxes.lazy().select("split", "target").unique(), on=["split", "target"], how="semi")
        .select(pl.concat_str("split", pl.lit("/images/"), "file_name").alias("dest"), "target", "sha256", "split")
        .unique("dest", keep="first")
        .collect()
    )
    counts, problems = lay_out(store, out, images.lazy(), force=False)
    if problems:
        raise ReleaseError(f"{len(problems)} image(s) of release {name!r} do not match it in ROOT, for example {problems[0]}")
    datasets = {}
    for (split,), split_images in images.group_by("split", maintain_order=True):
        paths = {row["target"]: str(out / row["dest"]) for row in split_images.iter_rows(named=True)}
        annotations = {}
        for (target,), image_boxes in boxes.filter(pl.col("split") == split).group_by("target"):
            annotations[paths[target]] = sv.Detections(
                xyxy=image_boxes.select("x_min", "y_min", "x_max", "y_max").to_numpy().astype(np.float32),
                class_id=np.array([class_ids[label] for label in image_boxes["label"]], dtype=int),
            )
        for path in paths.values():
            annotations.setdefault(path, sv.Detections.empty())
        datasets[split] = sv.DetectionDataset(classes=classes, images=list(paths.values()), annotations=annotations)
    return datasets, {"images": images.height, **counts}
