"""The coverage report asset: the table `encord-assets status` prints, from the manifests on disk."""

from pathlib import Path

import dagster as dg

from encord_assets.layout.paths import bookkeeping_key
from encord_assets.lazy import pl
from encord_assets.metadata import table_metadata
from encord_assets.operations.exhausted import read_exhausted
from encord_assets.products.coverage import completeness_by_split, coverage, problem_rows, unavailable_by_reason
from encord_assets.sources.registry import SOURCES
from encord_assets.store import DatasetStore


def report_key(name: str) -> str:
    return bookkeeping_key("reports", f"{name}.csv")


def report_tables(store: DatasetStore) -> "dict[str, pl.DataFrame]":
    return {
        "coverage": coverage(store),
        "completeness_by_split": completeness_by_split(store),
        "unavailable_by_reason": unavailable_by_reason(store),
        "exhausted_partitions": read_exhausted(store).drop("manifest"),
        "problems": problem_rows(store),
    }


def print_status(store: DatasetStore, problems_csv: Path | None = None) -> None:
    """What `encord-assets status` prints: the tables of the coverage report asset."""
    tables = report_tables(store)
    with pl.Config(tbl_rows=500, tbl_cols=20, tbl_width_chars=200, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(tables["coverage"])
        for name in ("completeness_by_split", "unavailable_by_reason", "exhausted_partitions"):
            if tables[name].height:
                print(f"\n{name.replace('_', ' ')}:\n{tables[name]}")
    problems = tables["problems"]
    print(f"\n{problems.height} row(s) unavailable or failed", end="")
    if problems_csv:
        problems.write_csv(problems_csv)
        print(f"; listed with their reasons in {problems_csv}", end="")
    print()


def write_reports(store: DatasetStore) -> "dict[str, pl.DataFrame]":
    """Compute the report tables and write each as CSV under ROOT/_encord_assets/reports/."""
    tables = report_tables(store)
    for name, table in tables.items():
        store.write(report_key(name), table.write_csv)
    return tables


@dg.asset(
    group_name="reports",
    kinds={"csv"},
    # Lineage only: the report reads manifests from disk, never loads these assets.
    deps=[spec.name for spec in SOURCES],
    description=(
        "Coverage per split, modality and source (rows, placed, already present, unavailable by reason, failed, "
        "rejected, bytes on disk), partitions the retry sensor gave up on, and a CSV of every unavailable/failed row."
    ),
)
def coverage_report(context: dg.AssetExecutionContext, store: DatasetStore) -> dg.MaterializeResult:
    tables = write_reports(store)
    table = tables["coverage"]
    totals = {c: int(table[c].sum()) for c in table.columns if c not in ("split", "modality", "source")} if table.height else {}
    context.log.info(f"coverage: {totals}")
    splits = tables["completeness_by_split"]
    return dg.MaterializeResult(
        metadata={
            # one number per split, so the asset's Plots tab charts each split's completeness over time
            **{f"{row['split']} complete_pct": row["complete_pct"] for row in splits.iter_rows(named=True)},
            **{f"{row['split']} not_fetched": row["not_fetched"] for row in splits.iter_rows(named=True)},
            "completeness_by_split": table_metadata(splits),
            **{f"total_{name}": value for name, value in totals.items()},
            "coverage": table_metadata(table, limit=500),
            "unavailable_by_reason": table_metadata(tables["unavailable_by_reason"], limit=500),
            "exhausted_partitions": table_metadata(tables["exhausted_partitions"], limit=500),
            "problems_rows": tables["problems"].height,
            "problems_csv": dg.MetadataValue.path(store.uri(report_key("problems"))),
        }
    )
