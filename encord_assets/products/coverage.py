"""Coverage from what is on disk: the partition manifests and the infos rejects."""

from pathlib import Path

import polars as pl

from encord_assets.layout.outcomes import Outcome
from encord_assets.layout.paths import bookkeeping_dir, manifests_dir
from encord_assets.operations.exhausted import read_exhausted

OUTCOMES = [outcome.value for outcome in Outcome]


def read_manifests(root: Path) -> pl.DataFrame | None:
    files = sorted(manifests_dir(root).glob("*/*.parquet"))
    frames = [pl.read_parquet(f).with_columns(pl.lit(str(f)).alias("manifest_file")) for f in files]
    return pl.concat(frames, how="diagonal_relaxed") if files else None


def read_rejects(root: Path) -> pl.DataFrame:
    files = sorted((bookkeeping_dir(root) / "rejects").glob("*.csv"))
    frames = []
    for file in files:
        modality, split = file.stem.split("__")
        frame = pl.read_csv(file, infer_schema=False)
        if frame.height:
            frames.append(frame.with_columns(pl.lit(split).alias("split"), pl.lit(modality).alias("modality")))
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(
        schema={"infos_file": pl.String, "infos_row": pl.String, "column": pl.String, "value": pl.String, "reason": pl.String, "kind": pl.String, "split": pl.String, "modality": pl.String}
    )


def coverage(root: Path) -> pl.DataFrame:
    """Rows per (split, modality, source) by outcome, with bytes on disk; infos rejects as their own rows."""
    manifests = read_manifests(root)
    parts = []
    if manifests is not None:
        parts.append(
            manifests.group_by("split", "modality", "source")
            .agg(
                pl.len().alias("rows"),
                *[(pl.col("outcome") == o).sum().alias(o) for o in OUTCOMES],
                pl.col("bytes").filter(pl.col("outcome").is_in([Outcome.PLACED.value, Outcome.ALREADY_PRESENT.value]))
                .sum()
                .alias("bytes_on_disk"),
            )
        )
    rejects = read_rejects(root)
    if rejects.height:
        parts.append(
            rejects.group_by("split", "modality", "kind")
            .agg(pl.len().alias("rows"))
            .select(
                "split",
                "modality",
                pl.concat_str(pl.lit("(infos "), pl.col("kind"), pl.lit(")")).alias("source"),
                "rows",
                *[pl.lit(0, pl.UInt32).alias(o) for o in OUTCOMES if o != Outcome.REJECTED.value],
                pl.col("rows").alias(Outcome.REJECTED.value),
                pl.lit(0, pl.Int64).alias("bytes_on_disk"),
            )
        )
    if not parts:
        return pl.DataFrame(schema={"split": pl.String, "modality": pl.String, "source": pl.String, "rows": pl.UInt32})
    columns = ["split", "modality", "source", "rows", *OUTCOMES, "bytes_on_disk"]
    return pl.concat([p.select(columns) for p in parts], how="vertical_relaxed").sort("split", "modality", "source")


def completeness_by_split(root: Path) -> pl.DataFrame:
    """Per split: infos rows routed to a source, and how many are on disk, unavailable, failed or
    not fetched yet (no manifest records them); `complete_pct` counts rows needing nothing more."""
    tables = [t for t in sorted((bookkeeping_dir(root) / "tables").glob("infos_*/*.parquet")) if t.parent.name != "infos_text"]
    schema = {"split": pl.String, "rows": pl.UInt32}
    wanted = (
        pl.concat([pl.scan_parquet(t).select("split", "source") for t in tables]).filter(pl.col("source").is_not_null())
        .group_by("split").agg(pl.len().alias("rows")).collect()
        if tables else pl.DataFrame(schema=schema)
    )
    manifests = read_manifests(root)
    on_disk = pl.col("outcome").is_in([Outcome.PLACED.value, Outcome.ALREADY_PRESENT.value])
    settled = manifests.group_by("split").agg(
        on_disk.sum().alias("on_disk"),
        *[(pl.col("outcome") == o).sum().alias(o) for o in (Outcome.UNAVAILABLE.value, Outcome.FAILED.value, Outcome.REJECTED.value)],
        pl.len().alias("recorded"),
    ) if manifests is not None else pl.DataFrame(schema={"split": pl.String})
    table = wanted.join(settled, on="split", how="left").fill_null(0)
    for column in ("on_disk", *(o.value for o in (Outcome.UNAVAILABLE, Outcome.FAILED, Outcome.REJECTED)), "recorded"):
        if column not in table.columns:
            table = table.with_columns(pl.lit(0, pl.UInt32).alias(column))
    done = pl.col("on_disk") + pl.col(Outcome.UNAVAILABLE.value) + pl.col(Outcome.REJECTED.value)
    return table.with_columns(
        (pl.col("rows").cast(pl.Int64) - pl.col("recorded")).clip(lower_bound=0).alias("not_fetched"),
        pl.when(pl.col("rows") > 0).then((100 * done / pl.col("rows")).round(1)).otherwise(100.0).alias("complete_pct"),
    ).drop("recorded").sort("split")


def unavailable_by_reason(root: Path) -> pl.DataFrame:
    """Unavailable rows per (split, modality, source) and error class."""
    manifests = read_manifests(root)
    if manifests is None:
        return pl.DataFrame(schema={"split": pl.String, "modality": pl.String, "source": pl.String, "reason": pl.String, "rows": pl.UInt32})
    return (
        manifests.filter(pl.col("outcome") == Outcome.UNAVAILABLE.value)
        .group_by("split", "modality", "source", pl.col("error_class").alias("reason"))
        .agg(pl.len().alias("rows"))
        .sort("split", "modality", "source", "reason")
    )


def problem_rows(root: Path) -> pl.DataFrame:
    """Every unavailable or failed row with its reason: a list to hand to a colleague.

    `partition_exhausted` marks failed rows whose partition the retry sensor gave up on."""
    manifests = read_manifests(root)
    if manifests is None:
        return pl.DataFrame()
    exhausted = read_exhausted(root)["manifest"].to_list()
    return manifests.filter(pl.col("outcome").is_in([Outcome.UNAVAILABLE.value, Outcome.FAILED.value])).select(
        "split", "source", "infos_file", "infos_row", "row_id", "target", "outcome", "error_class", "error_message",
        pl.col("manifest_file").is_in(exhausted).alias("partition_exhausted"),
    )
