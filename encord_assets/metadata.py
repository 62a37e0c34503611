"""Polars tables as Dagster metadata the UI shows as tables."""

import dagster as dg
import polars as pl

_TYPES = {pl.Int64: "int", pl.Int32: "int", pl.UInt32: "int", pl.UInt64: "int", pl.Float64: "float", pl.Boolean: "bool"}


def table_metadata(frame: pl.DataFrame, limit: int = 50) -> dg.TableMetadataValue:
    shown = frame.head(limit)
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, _TYPES.get(dtype, "string")) for name, dtype in shown.schema.items()]
    )
    # Dagster wants the same fields in every record: a missing value (a file-level reject has no row) is shown empty
    records = [dg.TableRecord({k: "" if v is None else v for k, v in row.items()}) for row in shown.iter_rows(named=True)]
    return dg.MetadataValue.table(records, schema)
