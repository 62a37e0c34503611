"""YOLO: per split `images/`, `labels/` (one `class cx cy w h` line per box, normalized) and `data.yaml`,
written by supervision; for releases holding boxes (see detections.py), a clear error otherwise."""

from pathlib import Path

import polars as pl

from encord_assets.products.exports.detections import detection_datasets
from encord_assets.store import DatasetStore


def export(store: DatasetStore, name: str, files: pl.LazyFrame, out: Path, splits: list[str] | None) -> dict:
    detections = detection_datasets(store, name, "yolo", files, out)
    for split, dataset in detections.datasets.items():
        dataset.as_yolo(annotations_directory_path=str(out / split / "labels"), data_yaml_path=str(out / split / "data.yaml"))
    return {"splits": sorted(detections.datasets), **detections.counts, "problems": detections.problems}
