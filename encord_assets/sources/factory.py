"""Builds one partitioned asset per registry entry."""

import time

import dagster as dg
import polars as pl

from encord_assets.layout.outcomes import FetchLog, PartitionFetch
from encord_assets.layout.plan import plan_partition
from encord_assets.layout.progress import Progress
from encord_assets.layout.staging import fresh_staging_dir
from encord_assets.sources.partitions import hashed_partitions
from encord_assets.sources.registry import SOURCES, SourceSpec

STEP_RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def partition_rows(infos: pl.LazyFrame, spec: SourceSpec, partition_key: str) -> pl.DataFrame:
    return infos.filter((pl.col("source") == spec.name) & (pl.col("partition_key") == partition_key)).collect()


def build_source_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.name,
        partitions_def=hashed_partitions(spec.shards, spec.splits),
        ins={"infos": dg.AssetIn(f"infos_{spec.modality}")},
        io_manager_key="dataset_io_manager",
        required_resource_keys={"data_root", "operations", spec.fetcher},
        group_name=spec.modality,
        pool=spec.pool,
        # Files are retried inside the step and rows that still fail go to the retry sensor;
        # this re-runs the whole step after an unexpected error (an index read, a crash).
        retry_policy=STEP_RETRY,
        kinds={spec.modality},
        description=f"{spec.dataset} {spec.modality} files of one partition, placed in the E-MM1 layout.",
        metadata={"source_dataset": spec.dataset, "fetcher": spec.fetcher, "shards": spec.shards},
    )
    def source_asset(context: dg.AssetExecutionContext, infos: pl.LazyFrame) -> PartitionFetch:
        data_root = context.resources.data_root
        key = context.partition_key
        rows = partition_rows(infos, spec, key)
        plan = plan_partition(data_root.root_path, spec.name, key, rows, data_root.retry_unavailable)
        staging = fresh_staging_dir(data_root.root_path, spec.name, key, context.run_id, context.instance)
        log = FetchLog(staging, Progress(plan.todo.height, context.log.info, context.resources.operations.progress_seconds))
        started = time.monotonic()
        context.log.info(f"{rows.height} rows, {plan.prior.height} targets settled, {plan.todo.height} to fetch")
        if plan.todo.height:
            getattr(context.resources, spec.fetcher).fetch(context, plan.todo, log)
        return PartitionFetch(spec.name, key, rows, plan.prior, log, time.monotonic() - started)

    return source_asset


SOURCE_ASSETS = [build_source_asset(spec) for spec in SOURCES]
