"""One infos asset per modality, partitioned by split: validated, normalized rows as parquet."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from encord_assets.infos.files import MODALITIES, InfosDir, infos_file, splits_for
from encord_assets.infos.normalize import NormalizedInfos, empty_rows, normalize
from encord_assets.layout.paths import bookkeeping_key
from encord_assets.lazy import pl
from encord_assets.metadata import table_metadata
from encord_assets.store import DatasetStore
from encord_assets.sources.partitions import add_shards
from encord_assets.sources.registry import sources_for


def split_partitions(modality: str) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(splits_for(modality)))


def read_split(infos_dir: InfosDir, store: DatasetStore, split: str, modality: str, work_dir: Path) -> NormalizedInfos | None:
    path = infos_file(infos_dir.path, split, modality)
    if path is None:
        return None
    name = str(path.relative_to(infos_dir.path)) if path.is_relative_to(infos_dir.path) else str(path)
    return normalize(path, name, split, modality, store.save_folders, store.audio_dir, store.max_clip_seconds, work_dir)


def describe_reject(row: dict) -> str:
    """One line for a rejects-table row; a file-level reject has no row, column or value."""
    if row["infos_row"] is None:
        return f"{row['infos_file']}: {row['reason']}"
    value = "" if row["value"] is None else f"={row['value']!r}"
    return f"{row['infos_file']} row {row['infos_row']}: {row['column']}{value}: {row['reason']}"


def rejects_key(modality: str, split: str) -> str:
    return bookkeeping_key("rejects", f"{modality}__{split}.csv")


def infos_output(
    context: dg.AssetExecutionContext, infos_dir: InfosDir, store: DatasetStore, modality: str, work_dir: Path
) -> Iterator[dg.Output]:
    split = context.partition_key
    infos = read_split(infos_dir, store, split, modality, work_dir)
    if infos is None:
        context.log.info(f"{split} has no {modality} infos file under {infos_dir.path}")
        yield dg.Output(empty_rows(modality), metadata={"rows": 0, "rejected": 0, "unrouted": 0})
        return
    rejects = infos.rejects
    store.write(rejects_key(modality, split), rejects.write_csv)
    kinds = dict(rejects.group_by("kind").len().iter_rows())
    for row in rejects.filter(pl.col("kind") == "rejected").head(20).iter_rows(named=True):
        context.log.warning(f"rejected {describe_reject(row)}")
    by_source = None
    if modality != "text":
        by_source = infos.counts.group_by("source").agg(pl.col("len").sum())
        # the source partitions these rows fall in exist from now on (before any source run needs them)
        new_shards = add_shards(context.instance, infos.counts, sources_for(modality))
        if new_shards:
            context.log.info(f"new shards: {', '.join(f'{name} {n}' for name, n in sorted(new_shards.items()))}")
    metadata = {
        "rows": int(infos.counts["len"].sum()),
        "rejected": kinds.get("rejected", 0),
        "unrouted": kinds.get("unrouted", 0),
        "rejects": table_metadata(rejects),
        "rejects_file": dg.MetadataValue.path(store.uri(rejects_key(modality, split))),
        **({"rows_by_source": table_metadata(by_source.sort("source"))} if by_source is not None else {}),
    }
    # a table written in the work folder is moved into place as it is
    yield dg.Output(infos.rows_file or infos.rows, metadata=metadata)


def build_infos_asset(modality: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"infos_{modality}",
        partitions_def=split_partitions(modality),
        io_manager_key="table_io_manager",
        group_name="infos",
        kinds={"polars", "parquet"},
        description=f"Validated, normalized E-MM1 {modality} infos rows of one split, with target paths and partition keys.",
    )
    def infos_asset(context: dg.AssetExecutionContext, infos_dir: InfosDir, store: DatasetStore) -> Iterator[dg.Output]:
        work_dir, _ = store.staging_dir(f"infos_{modality}", context.partition_key, context.run.run_id, context.instance)
        # the judged rows stay here until the IO manager has written the table: a generator asset
        # resumes only after its output is handled
        try:
            yield from infos_output(context, infos_dir, store, modality, work_dir)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    return infos_asset


INFOS_ASSETS = [build_infos_asset(modality) for modality in MODALITIES]
