"""CSV: `<release>.csv`, one row per file with its ids, path in the E-MM1 layout, license, caption and
labels, and `config.json` describing it (multi_label, label_column, split_column, label_separator,
filename, csv_separator)."""

import json
from pathlib import Path

import polars as pl

from encord_assets.store import DatasetStore

LABEL_SEPARATOR = "|"
CSV_SEPARATOR = ","
COLUMNS = (
    "split", "modality", "source_dataset", "dataset_license", "encord_id", "encord_text_id", "file_name", "target",
    "bytes", "sha256", "caption",
)


def export(store: DatasetStore, name: str, files: pl.LazyFrame, out: Path, splits: list[str] | None) -> dict:
    filename = f"{name}.csv"
    table = files.select(
        *COLUMNS[:7], pl.col("target").alias("path"), *COLUMNS[8:], pl.col("labels").list.join(LABEL_SEPARATOR).alias("labels")
    )
    table.sink_csv(out / filename, separator=CSV_SEPARATOR)
    stats = files.select(pl.len().alias("rows"), (pl.col("labels").list.len() > 1).any().alias("multi_label")).collect().row(0, named=True)
    config = {
        "multi_label": bool(stats["multi_label"]),
        "label_column": "labels",
        "split_column": "split",
        "label_separator": LABEL_SEPARATOR,
        "filename": filename,
        "csv_separator": CSV_SEPARATOR,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return {"rows": stats["rows"], "file": str(out / filename)}
