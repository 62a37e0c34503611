"""COCO: per split `images/`, `annotations.json` (COCO detection: the boxes, written by supervision) and
`segmentation.json` (COCO instance segmentation: one annotation per mask, with the images and categories
of annotations.json); for releases holding detections (see detections.py), a clear error otherwise.

A mask's `segmentation` is a compressed RLE (pycocotools) of the mask resized nearest-neighbour to its
image (Open Images masks are larger than the images), its `bbox` the annotated box. A mask that cannot be
read (gone or changed in ROOT since the release, undecodable, not one band) is left out with its reason.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from encord_assets.products.exports.detections import detection_datasets
from encord_assets.products.pull import THREADS
from encord_assets.store import DatasetStore
from encord_assets.store.backends import sha256_of


def mask_segmentation(store: DatasetStore, row: dict) -> dict | str:
    """The mask of `row` as an RLE at its image's size (with its area), or why it cannot be."""
    from pycocotools import mask as rle

    try:
        with store.local_file(row["mask"]) as path:
            if sha256_of(path) != row["mask_sha256"]:
                return "changed in ROOT since the release"
            with Image.open(path) as mask:
                mask.load()
                if len(mask.getbands()) != 1:
                    return f"a mask has one band, this one {mask.mode}"
                pixels = np.asarray(mask.resize((row["width"], row["height"]), Image.Resampling.NEAREST)) > 0
    except FileNotFoundError:
        return "no longer in ROOT"
    except OSError as error:
        return f"not a decodable mask: {error}"
    encoded = rle.encode(np.asfortranarray(pixels.astype(np.uint8)))
    return {"size": [int(n) for n in encoded["size"]], "counts": encoded["counts"].decode("ascii"), "area": float(rle.area(encoded))}


def write_segmentation(store: DatasetStore, masks: pl.DataFrame, detection_file: Path, path: Path) -> tuple[int, list[tuple[str, str]]]:
    """segmentation.json of one split beside its detection file (same image and category ids)."""
    detection = json.loads(detection_file.read_text())
    image_ids = {image["file_name"]: image["id"] for image in detection["images"]}
    category_ids = {category["name"]: category["id"] for category in detection["categories"]}
    rows = list(masks.sort("path", "mask").iter_rows(named=True))
    with ThreadPoolExecutor(THREADS) as pool:
        encoded = list(pool.map(lambda row: mask_segmentation(store, row), rows))
    annotations, problems = [], []
    for row, mask in zip(rows, encoded, strict=True):
        if isinstance(mask, str):
            problems.append((row["mask"], mask))
            continue
        area = mask.pop("area")
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": image_ids[Path(row["path"]).name],
                "category_id": category_ids[row["label"]],
                "bbox": [row["x_min"], row["y_min"], row["x_max"] - row["x_min"], row["y_max"] - row["y_min"]],
                "area": area,
                "segmentation": mask,
                "iscrowd": 0,
            }
        )
    document = {key: detection[key] for key in detection if key != "annotations"}
    path.write_text(json.dumps({**document, "annotations": annotations}))
    return len(annotations), problems


def export(store: DatasetStore, name: str, files: pl.LazyFrame, out: Path, splits: list[str] | None) -> dict:
    detections = detection_datasets(store, name, "coco", files, out)
    problems, masks = list(detections.problems), 0
    for split, dataset in detections.datasets.items():
        detection_file = out / split / "annotations.json"
        dataset.as_coco(annotations_path=str(detection_file))
        written, bad = write_segmentation(store, detections.masks.filter(pl.col("split") == split), detection_file, out / split / "segmentation.json")
        masks += written
        problems += bad
    return {"splits": sorted(detections.datasets), **detections.counts, "masks": masks, "problems": problems}
