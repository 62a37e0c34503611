"""Encord manifests of a release, or of what the layout holds now, written to a local folder."""

from __future__ import annotations

from pathlib import Path

from encord_assets.layout.paths import bookkeeping_key
from encord_assets.lazy import pl
from encord_assets.products import items as item_tables
from encord_assets.products.encord.manifest import write_manifests
from encord_assets.products.encord.urls import EncordUrls
from encord_assets.products.releases import Filters, release_table, resolve, snapshot
from encord_assets.store import DatasetStore

LAYOUT_STEM = "encord_layout"


def release_stem(name: str) -> str:
    return f"encord_{name}"


def not_on_disk(store: DatasetStore) -> dict[str, int]:
    """Infos rows (text aside) whose file is not there, by the outcome their manifest records (`not_fetched`: none)."""
    keys = [key for key in store.find(bookkeeping_key("manifests")) if key.endswith(".parquet")]
    outcomes = (
        pl.scan_parquet(store.local_tables(keys)).select("split", "modality", pl.col("row_id").cast(pl.Int64), "outcome")
        .unique(["split", "modality", "row_id"], keep="any")
        if keys
        else pl.LazyFrame(schema={"split": pl.String, "modality": pl.String, "row_id": pl.Int64, "outcome": pl.String})
    )
    counts = (
        item_tables.items(store).filter(~pl.col("present"))
        .join(outcomes, on=["split", "modality", "row_id"], how="left")
        .group_by(pl.col("outcome").fill_null("not_fetched"))
        .len()
        .collect()
    )
    return {outcome: int(n) for outcome, n in sorted(counts.rows())}


def manifests(
    store: DatasetStore, name: str | None, infos_dir: Path | None, urls: EncordUrls, out: Path, formats: tuple[str, ...], max_items: int
) -> dict:
    """The manifests of release `name` (or `latest`), or with `name=None` of every file placed now, under `out`."""
    base = urls.base(store.root)
    if name is None:
        files, products, _ = snapshot(store, infos_dir, Filters())
        return write_manifests(
            files, products["groups"], products["triplets"], base, out, LAYOUT_STEM, formats, max_items, left_out=not_on_disk(store)
        )
    name = resolve(store, name)
    tables = {table: release_table(store, name, table) for table in ("files", "groups", "triplets")}
    return write_manifests(tables["files"], tables["groups"], tables["triplets"], base, out, release_stem(name), formats, max_items, release=name)
