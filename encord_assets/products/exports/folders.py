"""FOLDERS: `<split>/<label>/<file_name>`, unlabelled files directly in `<split>/`.

Labels are EShot categories, triplet annotations and Open Images classes;
a file with several labels is in each label's folder. Two files of a split with one file name in one
folder cannot both be there: the first (by target) is kept, the others counted as name collisions.
"""

from pathlib import Path

import polars as pl

from encord_assets.products.pull import lay_out
from encord_assets.store import DatasetStore


def label_folder(label: pl.Expr) -> pl.Expr:
    """A label as one safe path component."""
    return label.str.replace_all(r"[/\\\x00-\x1f]", "_").str.replace(r"^\.\.?$", "_")


def export(store: DatasetStore, name: str, files: pl.LazyFrame, out: Path, splits: list[str] | None) -> dict:
    rows = (
        files.select("split", "target", "file_name", "sha256", "labels")
        .unique(["split", "target"], keep="first")
        .explode("labels", empty_as_null=True)
        .with_columns(
            pl.when(pl.col("labels").is_null())
            .then(pl.concat_str("split", pl.lit("/"), "file_name"))
            .otherwise(pl.concat_str("split", pl.lit("/"), label_folder(pl.col("labels")), pl.lit("/"), "file_name"))
            .alias("dest")
        )
        .sort("dest", "target")
    )
    planned = rows.unique("dest", keep="first", maintain_order=True)
    counts, problems = lay_out(store, out, planned, force=False)
    collisions = rows.select(pl.len()).collect().item() - sum(counts.values())
    return {"files": sum(counts.values()), "name_collisions": collisions, "problems": problems, **counts}
