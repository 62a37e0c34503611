"""Parquet tables under ROOT (normalized infos, captions, reports), one file per partition."""

import dagster as dg
import polars as pl

from encord_assets.layout.paths import bookkeeping_dir, partition_file_stem, write_atomically
from encord_assets.layout.data_root import DataRoot

# An asset sets this metadata to choose its table's path under ROOT; `{partition}` is filled in.
TABLE_PATH = "encord/table_path"


class TableIOManager(dg.ConfigurableIOManager):
    data_root: dg.ResourceDependency[DataRoot]

    def _path(self, context: dg.OutputContext | dg.InputContext, partition_key: str | None):
        output = context if isinstance(context, dg.OutputContext) else context.upstream_output
        name = output.asset_key.path[-1]
        pattern = (output.definition_metadata or {}).get(TABLE_PATH)
        stem = partition_file_stem(partition_key) if partition_key else "all"
        if pattern:
            return self.data_root.root_path / pattern.format(partition=stem)
        return bookkeeping_dir(self.data_root.root_path) / "tables" / name / f"{stem}.parquet"

    def handle_output(self, context: dg.OutputContext, table: pl.LazyFrame | pl.DataFrame) -> None:
        path = self._path(context, context.partition_key if context.has_partition_key else None)
        # sink_parquet streams: normalized infos of the real E-MM1 never sit whole in memory.
        write_atomically(path, table.lazy().sink_parquet)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pl.LazyFrame:
        keys = context.asset_partition_keys if context.has_asset_partitions else [None]
        paths = [self._path(context, key) for key in keys]
        existing = [str(p) for p in paths if p.exists()]
        if not existing:
            raise FileNotFoundError(f"no table at {paths[0]}: materialize {context.upstream_output.asset_key.to_user_string()} first")
        return pl.scan_parquet(existing)
