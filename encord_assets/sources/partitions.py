"""Partition keys: `<shard>|<split>`, the shard a stable hash of the row's target path,
unless a source declares its own partitions (registry.OwnPartitions, e.g. upstream archives).

A row's shard depends only on its own target path and the source's fixed shard count, so
keys never move when infos grow; a target shared by two splits or by an audio and a video
row has the same shard everywhere.
"""

import warnings

import dagster as dg
import polars as pl
import polars_hash as plh

from encord_assets.infos.datasets import lookup


def shard_width(shards: int) -> int:
    return max(3, len(str(shards - 1)))


def shard_keys(shards: int) -> list[str]:
    width = shard_width(shards)
    return [f"{shard:0{width}d}" for shard in range(shards)]


def hashed_partitions(shards: int, splits: tuple[str, ...]) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            "shard": dg.StaticPartitionsDefinition(shard_keys(shards)),
            "split": dg.StaticPartitionsDefinition(list(splits)),
        }
    )


def split_mapping() -> dg.MultiToSingleDimensionPartitionMapping:
    """Each `<shard>|<split>` partition reads its split's infos partition (a StaticPartitionMapping
    says the same, but asset backfills refuse one whose downstream is multi-dimensional)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="split")


def partition_key_expr(shards: pl.Expr) -> pl.Expr:
    """`<shard>|<split>` for normalized rows, given each row's shard count."""
    shard = plh.col("target").nchash.xxhash64() % shards.cast(pl.UInt64)
    width = pl.max_horizontal(pl.lit(3), (shards - 1).cast(pl.String).str.len_chars())
    return pl.concat_str([shard.cast(pl.String).str.zfill(width), pl.col("split")], separator="|")


def source_partitions(spec) -> dg.PartitionsDefinition:
    if spec.partitions is not None:
        return dg.StaticPartitionsDefinition(list(spec.partitions.keys))
    return hashed_partitions(spec.shards, spec.splits)


def source_partition_key_expr(specs) -> pl.Expr:
    """partition_key of normalized rows (column `source`): the spec's own key when it declares
    partitions (null when its fetcher locates rows at run time), else `<shard>|<split>`."""
    hashed = partition_key_expr(lookup(pl.col("source"), {s.name: s.shards for s in specs}, default=1).cast(pl.Int64))
    own = {s.name: s.partitions.row_key for s in specs if s.partitions is not None}
    if not own:
        return hashed
    return (
        pl.when(pl.col("source").is_in(list(own)))
        .then(lookup(pl.col("source"), own).cast(pl.String))
        .otherwise(hashed)
    )
