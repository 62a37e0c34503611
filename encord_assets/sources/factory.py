"""Builds one partitioned asset per registry entry, and the index assets the entries name."""

import importlib
import time
from typing import Callable

import dagster as dg

from encord_assets.layout.plan import plan_partition
from encord_assets.ledger import FetchLedger, PartitionFetch
from encord_assets.operations.verified import StagedVerifier
from encord_assets.progress import Progress
from encord_assets.infos.assets import split_partitions
from encord_assets.lazy import pl
from encord_assets.sources.partitions import infos_mapping, source_partitions
from encord_assets.sources.registry import SOURCES, SourceSpec
from encord_assets.sources.work import PartitionWork

STEP_RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def partition_rows(infos: "pl.LazyFrame", spec: SourceSpec, partition_key: str) -> "pl.DataFrame":
    return infos.filter((pl.col("source") == spec.name) & (pl.col("partition_key") == partition_key)).collect()


def fetch_partition(context: dg.AssetExecutionContext, spec: SourceSpec, select_rows: Callable, **index) -> PartitionFetch:
    """One partition of a source: `select_rows(fetcher, work)` gives its rows; what is not yet in
    place is fetched into this run's staging, for the dataset IO manager to place."""
    store = context.resources.store
    key = context.partition_key
    fetcher = getattr(context.resources, spec.fetcher)
    staging, others_running = store.staging_dir(spec.name, key, context.run.run_id, context.instance)
    ledger = FetchLedger(staging, verifier=StagedVerifier(spec.modality) if spec.verify_staged else None)
    work = PartitionWork(spec, key, pl.DataFrame(), ledger, store, context.log)
    rows = select_rows(fetcher, work)
    plan = plan_partition(store, spec.name, key, rows)
    if not others_running and (aborted := store.abort_abandoned_uploads(plan.todo["target"].to_list())):
        context.log.info(f"aborted {aborted} multipart upload(s) left by a killed run")
    work.rows = plan.todo
    ledger.progress = Progress(plan.todo.height, context.log.info, context.resources.operations.progress_seconds)
    started = time.monotonic()
    context.log.info(f"{rows.height} rows, {plan.prior.height} targets settled, {plan.todo.height} to fetch")
    try:
        if plan.todo.height:
            # `index` (when the spec names one) is only read when something is to be fetched
            fetcher.fetch(work, **index)
        if spec.locates_rows:
            # the manifest holds the rows this partition now knows to be its own
            rows = fetcher.rows_located(work, rows)
    except BaseException:
        ledger.stop_verifying()
        raise
    return PartitionFetch(spec.name, key, rows, plan.prior, ledger, time.monotonic() - started)


def build_source_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    partitions = source_partitions(spec)
    mapping = infos_mapping(partitions, split_partitions(spec.modality))
    ins = {"infos": dg.AssetIn(f"infos_{spec.modality}", partition_mapping=mapping)}
    if spec.index:
        ins["index"] = dg.AssetIn(spec.index)

    @dg.asset(
        name=spec.name,
        partitions_def=partitions,
        ins=ins,
        io_manager_key="dataset_io_manager",
        required_resource_keys={"store", "operations", spec.fetcher},
        group_name=spec.modality,
        pool=spec.pool,
        # Files are retried inside the step and rows that still fail go to the retry sensor;
        # this re-runs the whole step after an unexpected error (an index read, a crash).
        retry_policy=STEP_RETRY,
        kinds={spec.modality},
        description=f"{spec.dataset} {spec.modality} files of one partition, placed in the E-MM1 layout.",
        metadata={"source_dataset": spec.dataset, "fetcher": spec.fetcher, "shards": spec.shards},
    )
    def source_asset(context: dg.AssetExecutionContext, infos, **index) -> PartitionFetch:
        def select_rows(fetcher, work: PartitionWork) -> pl.DataFrame:
            if spec.locates_rows:
                # rows located in this partition so far, and rows not located anywhere yet
                return fetcher.rows_to_fetch(work, infos.filter(pl.col("source") == spec.name).collect())
            return partition_rows(infos, spec, work.partition_key)

        return fetch_partition(context, spec, select_rows, **index)

    return source_asset


def build_index_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    """An upstream index (which file/row group/member holds each id), rebuilt only when the
    upstream revision it was built from changes; the fetcher provides `index_revision()` and
    `build_index(context, revision) -> (DataFrame, metadata)`."""

    @dg.asset(
        name=spec.index,
        io_manager_key="table_io_manager",
        required_resource_keys={"store", spec.fetcher},
        group_name=spec.modality,
        kinds={"parquet"},
        description=f"Where each {spec.dataset} file id lives upstream, at one upstream revision.",
        metadata={"source_dataset": spec.dataset, "fetcher": spec.fetcher},
    )
    def index_asset(context: dg.AssetExecutionContext):
        fetcher = getattr(context.resources, spec.fetcher)
        revision = fetcher.index_revision()
        previous = context.instance.get_latest_materialization_event(context.asset_key)
        metadata = previous.asset_materialization.metadata if previous and previous.asset_materialization else {}
        unchanged = metadata.get("revision") and metadata["revision"].value == revision
        table = context.resources.store.read_table(spec.index) if unchanged else None
        if table is not None:
            context.log.info(f"upstream revision {revision} unchanged: reusing the index built from it")
            built = {"reused": True}
        else:
            table, built = fetcher.build_index(context, revision)
        context.add_output_metadata({"revision": revision, "entries": table.height, **built})
        return table

    return index_asset


def build_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    """A source whose rows come from infos gets the factory's asset; another one (rows read from
    its own upstream tables) gets the asset `sources/<fetcher>_assets.py` builds with `build_asset(spec)`."""
    if spec.from_infos:
        return build_source_asset(spec)
    return importlib.import_module(f"encord_assets.sources.{spec.fetcher}_assets").build_asset(spec)


SOURCE_ASSETS = [build_asset(spec) for spec in SOURCES] + [
    build_index_asset(spec) for spec in {spec.index: spec for spec in SOURCES if spec.index}.values()
]
