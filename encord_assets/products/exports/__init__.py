"""Exports of a release, one module per format, into a folder (and optionally a zip of it).

Every format reads the release's tables; formats that hold files (folders) take them from ROOT like
`release pull` does: hard links, copies or downloads, each checked against the release's sha256.
"""

import shutil
from pathlib import Path

import polars as pl

from encord_assets.products.exports import coco, csv_table, darwin_json, folders, spacy_ner, yolo
from encord_assets.products.releases import release_table, resolve
from encord_assets.store import DatasetStore

FORMATS = {
    "folders": folders.export,
    "csv": csv_table.export,
    "spacy_ner": spacy_ner.export,
    "darwin_json": darwin_json.export,
    "yolo": yolo.export,
    "coco": coco.export,
}


def export_release(
    store: DatasetStore,
    name: str,
    fmt: str,
    extract_to: Path,
    download_file: Path | None = None,
    splits: list[str] | None = None,
) -> dict:
    """Write release `name` (or latest) in format `fmt` under `extract_to`; zip it to `download_file` if given."""
    name = resolve(store, name)
    files = release_table(store, name, "files")
    if splits:
        files = files.filter(pl.col("split").is_in(splits))
    extract_to = Path(extract_to)
    extract_to.mkdir(parents=True, exist_ok=True)
    counts = FORMATS[fmt](store, name, files, extract_to, splits or None)
    if download_file is not None:
        archive = shutil.make_archive(str(Path(download_file).with_suffix("")), "zip", root_dir=extract_to)
        counts["download_file"] = archive
    return {"release": name, "format": fmt, **counts}
