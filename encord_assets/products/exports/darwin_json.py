"""darwin_json: one Darwin JSON 2.0 file per item at `<split>/<target>.json`, its labels as tags, so that
darwin-py's own exporters (`darwin.exporter.export_annotations` to coco, cvat, pascalvoc, yolo, ...) run
on it. Images carry their width and height (read from the file's header)."""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
from PIL import Image

from encord_assets.products.pull import BATCH_ROWS, THREADS
from encord_assets.store import DatasetStore

SCHEMA_REF = "https://darwin-public.s3.eu-west-1.amazonaws.com/darwin_json/2.0/schema.json"
SLOT_TYPES = {"image": "image", "video": "video", "audio": "audio", "points": "pointcloud"}


def item(store: DatasetStore, name: str, row: dict) -> dict:
    slot = {"type": SLOT_TYPES[row["modality"]], "slot_name": "0", "source_files": [{"file_name": row["file_name"]}]}
    if row["modality"] == "image":
        with store.local_file(row["target"]) as path, Image.open(path) as image:
            slot["width"], slot["height"] = image.size
    folder = row["target"].rsplit("/", 1)[0]
    return {
        "version": "2.0",
        "schema_ref": SCHEMA_REF,
        "item": {
            "name": row["file_name"],
            "path": f"/{folder}",
            # Open Images images have no encord id: their target names them
            "source_info": {"dataset": {"name": name}, "item_id": f"{row['split']}/{row['modality']}/{row['encord_id'] if row['encord_id'] is not None else row['target']}"},
            "slots": [slot],
        },
        "annotations": [
            {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{row['target']}#{label}")), "name": label, "slot_names": ["0"], "tag": {}}
            for label in row["labels"]
        ],
        "properties": [],
    }


def export(store: DatasetStore, name: str, files: pl.LazyFrame, out: Path, splits: list[str] | None) -> dict:
    rows = files.select("split", "modality", "encord_id", "target", "file_name", "labels").unique(["split", "target"], keep="first")
    written = unreadable = 0

    def write(row: dict) -> bool:
        path = out / row["split"] / f"{row['target']}.json"
        try:
            document = item(store, name, row)
        except (OSError, Image.UnidentifiedImageError):
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document))
        return True

    with ThreadPoolExecutor(THREADS) as pool:
        for batch in rows.collect_batches(chunk_size=BATCH_ROWS):
            for ok in pool.map(write, batch.iter_rows(named=True)):
                written += ok
                unreadable += not ok
    return {"items": written, "unreadable_images": unreadable}
