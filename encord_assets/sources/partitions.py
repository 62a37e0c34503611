"""Partition keys: `<shard>|<split>`, the shard a stable hash of the row's target path,
unless a source declares its own partitions (registry.OwnPartitions, e.g. upstream archives).

A row's shard depends only on its own target path and the source's fixed shard count, so
keys never move when infos grow; a target shared by two splits or by an audio and a video
row has the same shard everywhere.

The shard dimension is dynamic: an infos asset adds the shards its rows fall in, so a
source has partitions where it has rows, not `shards x splits` mostly empty ones (a shard with
rows in one split only still has an empty partition in the other). Keys are only ever added.
"""

from __future__ import annotations

import warnings

import dagster as dg

from encord_assets.infos.datasets import lookup
from encord_assets.lazy import pl, plh
from encord_assets.store import DatasetStore


def shards_name(source_name: str) -> str:
    """Name of the dynamic partitions holding a hashed source's shards with rows."""
    return f"{source_name}_shards"


def hashed_partitions(source_name: str, splits: tuple[str, ...]) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            "shard": dg.DynamicPartitionsDefinition(name=shards_name(source_name)),
            "split": dg.StaticPartitionsDefinition(list(splits)),
        }
    )


def add_shards(instance: dg.DagsterInstance, rows_by_partition: pl.DataFrame, specs) -> dict[str, int]:
    """Register the shards of hashed sources that rows fall in (columns `source`, `partition_key`);
    returns the number of new shards per source."""
    added = {}
    for spec in specs:
        if spec.partitions is not None:
            continue
        keys = rows_by_partition.filter(pl.col("source") == spec.name)["partition_key"].drop_nulls()
        shards = set(keys.str.split("|").list.first().to_list())
        new = sorted(shards - set(instance.get_dynamic_partitions(shards_name(spec.name))))
        if new:
            instance.add_dynamic_partitions(shards_name(spec.name), new)
            added[spec.name] = len(new)
    return added


def infos_mapping(partitions: dg.PartitionsDefinition, infos_partitions: dg.PartitionsDefinition) -> dg.PartitionMapping:
    """How a source partition depends on its modality's split-partitioned infos asset.

    `<shard>|<split>` reads its split's partition when the split dimension is the infos asset's
    partitions definition (the one shape the backfill daemon accepts beside all-to-all: it
    refuses a StaticPartitionMapping into a multi-partitioned asset). A source whose splits are a
    subset of the infos asset's (no EShot rows, or only EShot rows), and a source with its own
    partitions (archives holding rows of every split), depend on every infos partition; their
    rows are picked by partition key either way.
    """
    if isinstance(partitions, dg.MultiPartitionsDefinition):
        split = next(dim for dim in partitions.partitions_defs if dim.name == "split")
        if split.partitions_def == infos_partitions:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", dg.BetaWarning)
                return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="split")
    return dg.AllPartitionMapping()


def shard_width(shards: int) -> int:
    """Digits of a shard number in partition keys: at least three."""
    return max(3, len(str(shards - 1)))


def partition_key_expr(shards: pl.Expr, width: int | pl.Expr | None = None) -> pl.Expr:
    """`<shard>|<split>` for normalized rows, given each row's shard count (and the shard's digits,
    when known without reading `shards` again row by row)."""
    shard = plh.col("target").nchash.xxhash64() % shards.cast(pl.UInt64)
    if width is None:
        width = pl.max_horizontal(pl.lit(3), (shards - 1).cast(pl.String).str.len_chars())
    return pl.concat_str([shard.cast(pl.String).str.zfill(width), pl.col("split")], separator="|")


def source_partitions(spec) -> dg.PartitionsDefinition:
    if spec.partitions is not None:
        return dg.StaticPartitionsDefinition(list(spec.partitions.keys))
    return hashed_partitions(spec.name, spec.splits)


def source_partition_keys(specs, split: str) -> tuple[pl.DataFrame, pl.Expr]:
    """Every (source, partition_key) a row of `split` can have, and the expression for each
    normalized row's position among them (columns `source`, `target`; null for no source).

    A hashed source's keys are `<shard>|<split>` as `partition_key_expr` makes them, the row's
    at `xxhash64(target) % shards` after the source's first; a source that declares its own
    partitions has one key (null when its fetcher locates rows at run time). Picking from these
    few keys costs less than formatting a key row by row, and counting rows per partition counts
    positions."""
    sources: list[str] = []
    keys: list[str | None] = []
    first_key, shards = {}, {}
    for spec in specs:
        first_key[spec.name] = len(keys)
        if spec.partitions is None:
            shards[spec.name] = spec.shards
            keys += [f"{shard:0{shard_width(spec.shards)}d}|{split}" for shard in range(spec.shards)]
        else:
            shards[spec.name] = 1
            keys.append(spec.partitions.row_key)
        sources += [spec.name] * (len(keys) - first_key[spec.name])
    table = pl.DataFrame({"source": sources, "partition_key": keys}, schema={"source": pl.String, "partition_key": pl.String})
    shard = plh.col("target").nchash.xxhash64() % lookup(pl.col("source"), shards).cast(pl.UInt64)
    position = (lookup(pl.col("source"), first_key).cast(pl.UInt64) + shard).cast(pl.UInt32)
    return table, position


def partitions_with_rows(store: DatasetStore, source_name: str, modality: str) -> list[str | None] | None:
    """The partition keys holding rows of a source, from its materialized infos tables (None when
    there is no table yet; a None key stands for rows whose partition is found at run time)."""
    tables = store.infos_tables(modality)
    if not tables:
        return None
    keys = pl.scan_parquet(tables).filter(pl.col("source") == source_name).select("partition_key").unique().collect()
    return sorted(keys["partition_key"].to_list(), key=lambda key: (key is None, key or ""))
