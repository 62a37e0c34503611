"""Polars tables as Dagster metadata the UI shows as tables."""

import dagster as dg
import polars as pl

_TYPES = {pl.Int64: "int", pl.Int32: "int", pl.UInt32: "int", pl.UInt64: "int", pl.Float64: "float", pl.Boolean: "bool"}


def table_metadata(frame: pl.DataFrame, limit: int = 50) -> dg.TableMetadataValue:
    shown = frame.head(limit)
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, _TYPES.get(dtype, "string")) for name, dtype in shown.schema.items()]
    )
    records = [dg.TableRecord({k: v for k, v in row.items() if v is not None}) for row in shown.iter_rows(named=True)]
    return dg.MetadataValue.table(records, schema)
