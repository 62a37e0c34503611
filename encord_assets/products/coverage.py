"""Coverage from what is on disk: the partition manifests and the infos rejects."""

from __future__ import annotations

from encord_assets.infos.files import MODALITIES
from encord_assets.layout.paths import bookkeeping_key
from encord_assets.lazy import pl
from encord_assets.ledger import Outcome
from encord_assets.operations.exhausted import read_exhausted
from encord_assets.store import DatasetStore

OUTCOMES = [outcome.value for outcome in Outcome]


def read_manifests(store: DatasetStore) -> pl.DataFrame | None:
    frames = [frame.with_columns(pl.lit(uri).alias("manifest_file")) for uri, frame in store.manifests()]
    return pl.concat(frames, how="diagonal_relaxed") if frames else None


def read_rejects(store: DatasetStore) -> pl.DataFrame:
    frames = []
    for key in store.find(bookkeeping_key("rejects")):
        if not key.endswith(".csv"):
            continue
        modality, split = key.rsplit("/", 1)[-1].removesuffix(".csv").split("__")
        frame = store.read_csv(key)
        if frame is not None and frame.height:
            frames.append(frame.with_columns(pl.lit(split).alias("split"), pl.lit(modality).alias("modality")))
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(
        schema={"infos_file": pl.String, "infos_row": pl.String, "column": pl.String, "value": pl.String, "reason": pl.String, "kind": pl.String, "split": pl.String, "modality": pl.String}
    )


def coverage(store: DatasetStore) -> pl.DataFrame:
    """Rows per (split, modality, source) by outcome, with bytes on disk; infos rejects as their own rows."""
    manifests = read_manifests(store)
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
    rejects = read_rejects(store)
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


def completeness_by_split(store: DatasetStore) -> pl.DataFrame:
    """Per split: infos rows routed to a source, and how many are on disk, unavailable, failed or
    not fetched yet (no manifest records them); `complete_pct` counts rows needing nothing more."""
    tables = [t for modality in MODALITIES if modality != "text" for t in store.infos_tables(modality)]
    schema = {"split": pl.String, "rows": pl.UInt32}
    wanted = (
        pl.concat([pl.scan_parquet(t).select("split", "source") for t in tables]).filter(pl.col("source").is_not_null())
        .group_by("split").agg(pl.len().alias("rows")).collect()
        if tables else pl.DataFrame(schema=schema)
    )
    manifests = read_manifests(store)
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


def unavailable_by_reason(store: DatasetStore) -> pl.DataFrame:
    """Unavailable rows per (split, modality, source) and error class."""
    manifests = read_manifests(store)
    if manifests is None:
        return pl.DataFrame(schema={"split": pl.String, "modality": pl.String, "source": pl.String, "reason": pl.String, "rows": pl.UInt32})
    return (
        manifests.filter(pl.col("outcome") == Outcome.UNAVAILABLE.value)
        .group_by("split", "modality", "source", pl.col("error_class").alias("reason"))
        .agg(pl.len().alias("rows"))
        .sort("split", "modality", "source", "reason")
    )


def problem_rows(store: DatasetStore) -> pl.DataFrame:
    """Every unavailable or failed row with its reason: a list to hand to a colleague.

    `partition_exhausted` marks failed rows whose partition the retry sensor gave up on."""
    manifests = read_manifests(store)
    if manifests is None:
        return pl.DataFrame()
    exhausted = read_exhausted(store)["manifest"].to_list()
    return manifests.filter(pl.col("outcome").is_in([Outcome.UNAVAILABLE.value, Outcome.FAILED.value])).select(
        "split", "source", "infos_file", "infos_row", "row_id", "target", "outcome", "error_class", "error_message",
        pl.col("manifest_file").is_in(exhausted).alias("partition_exhausted"),
    )
