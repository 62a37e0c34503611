"""Parquet tables under ROOT (normalized infos, captions, indexes), one file per partition."""

import shutil
from pathlib import Path

import dagster as dg

from encord_assets.layout.paths import partition_file_stem, table_key
from encord_assets.lazy import pl
from encord_assets.store import DatasetStore

# An asset sets this metadata to choose its table's path under ROOT; `{partition}` is filled in.
TABLE_PATH = "encord/table_path"


class TableIOManager(dg.ConfigurableIOManager):
    store: dg.ResourceDependency[DatasetStore]

    def _key(self, context: dg.OutputContext | dg.InputContext, partition_key: str | None) -> str:
        output = context if isinstance(context, dg.OutputContext) else context.upstream_output
        name = output.asset_key.path[-1]
        pattern = (output.definition_metadata or {}).get(TABLE_PATH)
        if pattern:
            return pattern.format(partition=partition_file_stem(partition_key) if partition_key else "all")
        return table_key(name, partition_key)

    def handle_output(self, context: dg.OutputContext, table: "pl.LazyFrame | pl.DataFrame | Path") -> None:
        """`table` is a frame, or a parquet file already written (moved into place, not rewritten)."""
        key = self._key(context, context.partition_key if context.has_partition_key else None)
        if isinstance(table, Path):
            self.store.write(key, lambda tmp: shutil.move(table, tmp))
        else:
            # sink_parquet streams: normalized infos of the real E-MM1 never sit whole in memory.
            self.store.write(key, table.lazy().sink_parquet)
        context.add_output_metadata({"path": dg.MetadataValue.path(self.store.uri(key))})

    def load_input(self, context: dg.InputContext) -> "pl.LazyFrame":
        keys = context.asset_partition_keys if context.has_asset_partitions else [None]
        table_keys = [self._key(context, key) for key in keys]
        existing = self.store.local_tables(table_keys)
        if not existing:
            raise FileNotFoundError(
                f"no table at {self.store.uri(table_keys[0])}: materialize {context.upstream_output.asset_key.to_user_string()} first"
            )
        return pl.scan_parquet(existing)
