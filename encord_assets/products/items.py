"""Every infos row with the file the manifests say is there: the input of groups, triplets and releases."""

from __future__ import annotations

from encord_assets.layout.paths import bookkeeping_key
from encord_assets.lazy import pl
from encord_assets.ledger import Outcome
from encord_assets.store import DatasetStore

ON_DISK = [Outcome.PLACED.value, Outcome.ALREADY_PRESENT.value]
ITEM_COLUMNS = (
    "split", "modality", "row_id", "source", "source_dataset", "dataset_license", "save_folder", "file_name", "target",
)


def infos_rows(store: DatasetStore) -> pl.LazyFrame:
    tables = [path for modality in ("video", "audio", "image", "points") for path in store.infos_tables(modality)]
    if not tables:
        return pl.LazyFrame(schema={c: pl.Int64 if c == "row_id" else pl.String for c in ITEM_COLUMNS})
    return pl.scan_parquet(tables, missing_columns="insert").select(ITEM_COLUMNS)


def on_disk(store: DatasetStore) -> pl.LazyFrame:
    """(split, modality, row_id, bytes, sha256) of every row a manifest records as placed or present."""
    keys = [key for key in store.find(bookkeeping_key("manifests")) if key.endswith(".parquet")]
    tables = store.local_tables(keys)
    if not tables:
        return pl.LazyFrame(schema={"split": pl.String, "modality": pl.String, "row_id": pl.Int64, "bytes": pl.Int64, "sha256": pl.String})
    return (
        pl.scan_parquet(tables)
        .filter(pl.col("outcome").is_in(ON_DISK))
        .select("split", "modality", pl.col("row_id").cast(pl.Int64), pl.col("bytes").cast(pl.Int64), "sha256")
        # a row located at run time can be in several partitions' manifests
        .unique(["split", "modality", "row_id"], keep="any")
    )


def items(store: DatasetStore) -> pl.LazyFrame:
    """Every routed infos row (all modalities but text) with `present`, and `bytes`/`sha256` when present."""
    return infos_rows(store).join(on_disk(store), on=["split", "modality", "row_id"], how="left").with_columns(
        pl.col("sha256").is_not_null().alias("present")
    )


def captions(store: DatasetStore) -> pl.LazyFrame:
    tables = store.infos_tables("text")
    if not tables:
        return pl.LazyFrame(schema={"split": pl.String, "encord_text_id": pl.Int64, "caption": pl.String})
    return pl.scan_parquet(tables).select("split", "encord_text_id", "caption")
