"""Decide, from the last manifest and what the store holds, which targets still need fetching."""

from __future__ import annotations

from dataclasses import dataclass

from encord_assets.layout.paths import unsafe_layout_keys
from encord_assets.lazy import pl
from encord_assets.ledger import RESULT_SCHEMA, Outcome
from encord_assets.store import DatasetStore


@dataclass
class Plan:
    todo: pl.DataFrame  # one row per target still to fetch (first infos row of that target)
    prior: pl.DataFrame  # RESULT_SCHEMA: already present, known unavailable, rejected targets


# what the last manifest says of each target, the columns a plan reuses
KNOWN_SCHEMA = {"target": str, "outcome": str, "bytes": int, "sha256": str, "error_class": str, "error_message": str}


def plan_partition(store: DatasetStore, asset_name: str, partition_key: str, rows: pl.DataFrame) -> Plan:
    """Column operations throughout: a partition's thousands of rows cost the same whether or not
    anything is left to fetch (per target, only a present file no manifest describes is read)."""
    targets = rows["target"].unique(maintain_order=True)
    unsafe = unsafe_layout_keys(targets)
    rejected = pl.DataFrame(
        {"target": list(unsafe), "error_message": list(unsafe.values())}, schema={"target": pl.String, "error_message": pl.String}
    ).with_columns(pl.lit(Outcome.REJECTED.value).alias("outcome"), pl.lit("unsafe_path").alias("error_class"))
    safe = targets.filter(~targets.is_in(list(unsafe)))
    present = store.present(safe.to_list())
    previous = store.read_manifest(asset_name, partition_key)
    known = pl.DataFrame(schema=KNOWN_SCHEMA) if previous is None else previous.select(list(KNOWN_SCHEMA)).cast(KNOWN_SCHEMA)
    known = known.unique("target", keep="first").rename(lambda c: c if c == "target" else f"before_{c}")
    sizes = pl.DataFrame({"target": list(present), "size": list(present.values())}, schema={"target": pl.String, "size": pl.Int64})
    judged = (
        pl.DataFrame({"target": safe})
        .join(sizes, on="target", how="left", maintain_order="left")
        .join(known, on="target", how="left", maintain_order="left")
    )

    # Re-hashing every present file on each run would read the whole dataset again.
    already = judged.filter(pl.col("size").is_not_null()).select(
        "target",
        pl.lit(Outcome.ALREADY_PRESENT.value).alias("outcome"),
        pl.col("size").alias("bytes"),
        pl.when((pl.col("before_bytes") == pl.col("size")) & (pl.col("before_sha256") != ""))
        .then(pl.col("before_sha256"))
        .alias("sha256"),
    )
    unknown = already.filter(pl.col("sha256").is_null())["target"].to_list()
    if unknown:
        hashes = pl.DataFrame({"target": unknown, "hashed": [store.sha256(t) for t in unknown]}, schema={"target": pl.String, "hashed": pl.String})
        already = already.join(hashes, on="target", how="left", maintain_order="left").select(
            "target", "outcome", "bytes", pl.coalesce("sha256", "hashed").alias("sha256")
        )
    missing = pl.col("size").is_null()
    known_unavailable = missing & (pl.col("before_outcome") == Outcome.UNAVAILABLE.value) & (not store.retry_unavailable)
    unavailable = judged.filter(known_unavailable).select(
        "target",
        pl.lit(Outcome.UNAVAILABLE.value).alias("outcome"),
        pl.col("before_error_class").alias("error_class"),
        pl.col("before_error_message").alias("error_message"),
    )
    todo_targets = judged.filter(missing & ~known_unavailable.fill_null(False))["target"]
    todo = rows.unique("target", keep="first", maintain_order=True).filter(pl.col("target").is_in(todo_targets.implode()))
    prior = pl.concat([pl.DataFrame(schema=RESULT_SCHEMA), rejected, already, unavailable], how="diagonal_relaxed")
    return Plan(todo=todo, prior=prior.select(list(RESULT_SCHEMA)).cast(RESULT_SCHEMA))
