"""Materialize assets partition by partition in one Dagster instance (demo, tests, benchmarks)."""

import time

import dagster as dg
from dagster._core.storage.defs_state.base import set_defs_state_storage
import polars as pl

from encord_assets.definitions import build_defs
from encord_assets.infos.files import splits_for
from encord_assets.layout.paths import bookkeeping_key, manifest_key
from encord_assets.settings import setting
from encord_assets.sources.partitions import partitions_with_rows
from encord_assets.store import default_store

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class AssetProgress:
    """One line per partition run of an asset: done/total partitions, rows, MB placed, elapsed, ETA."""

    def __init__(self, asset_name: str, total: int, say):
        self.asset_name, self.total, self.say = asset_name, total, say
        self.partitions = self.rows = self.bytes = 0
        self.started = time.monotonic()

    def done(self, result: dg.ExecuteInProcessResult) -> None:
        self.partitions += 1
        for event in result.get_asset_materialization_events():
            metadata = event.materialization.metadata
            self.rows += metadata["rows"].value if "rows" in metadata else 0
            self.bytes += metadata["bytes_placed"].value if "bytes_placed" in metadata else 0
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.partitions * (self.total - self.partitions)
        self.say(
            f"{self.asset_name}: {self.partitions}/{self.total} partitions, {self.rows} rows, {self.bytes / 1e6:.1f} MB, "
            f"{elapsed:.0f} s elapsed, ETA {eta:.0f} s{'' if result.success else ' (this partition failed)'}"
        )


class Materializer:
    """One run per (asset, partition), recorded in `instance`; settings read from the environment now."""

    def __init__(self, instance: dg.DagsterInstance, say=lambda line: None):
        self.say = say
        self.defs = build_defs()
        self.instance = instance
        self.store = default_store().process_config_and_initialize()
        # with their checks: a partition with failed rows fails its run through `no_failed_rows`
        self.assets = [*self.defs.assets, *self.defs.asset_checks]
        self.failures: list[str] = []

    def run(self, asset_name: str, partition_key: str | None = None, raise_on_error: bool = False) -> dg.ExecuteInProcessResult:
        """A source asset's partition through its `fill_<source>` job (a named run, as the UI and
        sensors launch it), anything else as a run of that asset; checks included."""
        job = f"fill_{asset_name}"
        # Definitions are resolved with this instance's definitions-state storage: Dagster reads it
        # from a context variable, where the storage of an instance closed since may still be found.
        with set_defs_state_storage(self.instance.defs_state_storage):
            if self.defs.get_repository_def().has_job(job):
                result = self.defs.resolve_job_def(job).execute_in_process(
                    partition_key=partition_key, instance=self.instance, run_config=QUIET, raise_on_error=raise_on_error
                )
            else:
                result = dg.materialize(
                    self.assets,
                    selection=[asset_name],
                    partition_key=partition_key,
                    instance=self.instance,
                    resources=self.defs.resources,
                    run_config=QUIET,
                    raise_on_error=raise_on_error,
                )
        if not result.success:
            self.failures.append(f"{asset_name} {partition_key or ''}".strip())
        return result

    def infos(self, *modalities: str) -> None:
        """Materialize the infos assets of `modalities` (all when none is named), every split."""
        from encord_assets.infos.assets import INFOS_ASSETS

        for infos_asset in INFOS_ASSETS:
            if modalities and infos_asset.key.path[-1].removeprefix("infos_") not in modalities:
                continue
            for split in infos_asset.partitions_def.get_partition_keys():
                self.run(infos_asset.key.path[-1], split)

    def source_partitions(self, source_name: str, modality: str) -> list[str]:
        """The non-empty partitions of a source, from its materialized infos tables."""
        return partitions_with_rows(self.store, source_name, modality) or []

    def located_partitions(self, spec) -> None:
        """A source that locates its rows at run time (archives with no upstream id mapping):
        visit its partitions in order, running each that has something to look for, or a
        manifest to refresh; later ones usually have nothing left once the rows are found."""
        from encord_assets.sources.archive_index import ArchiveIndex

        tables = self.store.infos_tables(spec.modality)
        if not tables:
            return
        rows = pl.scan_parquet(tables).filter(pl.col("source") == spec.name).collect()
        index = ArchiveIndex(self.store, spec.name, spec.partitions.keys)
        manifests = set(self.store.find(bookkeeping_key("manifests", spec.name)))
        for key in spec.partitions.keys:
            if rows.height and (index.needs_run(key, rows) or manifest_key(spec.name, key) in manifests):
                self.run(spec.name, key)
                index.refresh()

    def openimages(self) -> None:
        """Open Images: the class list (it adds the chosen classes' partitions), each configured split's
        annotation table, then every (class, split) partition with annotations."""
        from encord_assets.sources.registry import SOURCES

        spec = next(spec for spec in SOURCES if spec.fetcher == "openimages")
        if not self.run("openimages_classes").success:
            return
        classes = self.store.read_table("openimages_classes").filter("chosen")
        for split in [s.strip() for s in setting("OPENIMAGES_SPLITS").read().split(",") if s.strip()]:
            if not self.run("openimages_annotations", split).success:
                continue
            table = self.store.read_table("openimages_annotations", split)
            for mid, folder in classes.select("mid", "folder").iter_rows():
                if table is not None and table.filter(pl.col("LabelName") == mid).height:
                    self.run(spec.name, f"{folder}|{split}")

    def everything(self, openimages: bool = False) -> None:
        from encord_assets.sources.registry import SOURCES

        self.infos()
        for split in splits_for("text"):
            self.run("captions", split)
        for index in sorted({spec.index for spec in SOURCES if spec.index}):
            self.run(index)
        for spec in SOURCES:
            if spec.locates_rows:
                self.located_partitions(spec)
                continue
            keys = self.source_partitions(spec.name, spec.modality)
            progress = AssetProgress(spec.name, len(keys), self.say)
            for key in keys:
                progress.done(self.run(spec.name, key))
        from encord_assets.products.link_assets import PRODUCTS

        for product in PRODUCTS:
            self.run(product)
        if openimages:
            self.openimages()
        self.run("coverage_report")
