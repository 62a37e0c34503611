"""COCO: per split `images/` and `annotations.json` (COCO detection format), written by supervision; for
releases holding boxes (see detections.py), a clear error otherwise."""

from pathlib import Path

import polars as pl

from encord_assets.products.exports.detections import detection_datasets
from encord_assets.store import DatasetStore


def export(store: DatasetStore, name: str, files: pl.LazyFrame, out: Path, splits: list[str] | None) -> dict:
    datasets, counts = detection_datasets(store, name, "coco", files, out)
    for split, dataset in datasets.items():
        dataset.as_coco(annotations_path=str(out / split / "annotations.json"))
    return {"splits": sorted(datasets), **counts}
