"""Polars tables as Dagster metadata the UI shows as tables."""

from __future__ import annotations

import dagster as dg

from encord_assets.lazy import pl


def column_type(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    return "bool" if dtype == pl.Boolean else "string"


def table_metadata(frame: pl.DataFrame, limit: int = 50) -> dg.TableMetadataValue:
    shown = frame.head(limit)
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, column_type(dtype)) for name, dtype in shown.schema.items()]
    )
    # Dagster wants the same fields in every record: a missing value (a file-level reject has no row) is shown empty
    records = [dg.TableRecord({k: "" if v is None else v for k, v in row.items()}) for row in shown.iter_rows(named=True)]
    return dg.MetadataValue.table(records, schema)
