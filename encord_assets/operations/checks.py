"""Asset checks built from the registry: placed files match their manifest and decode; infos
rows were all accepted and routed."""

import warnings
from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from encord_assets.infos.assets import rejects_key
from encord_assets.layout.io_manager import failure_summary
from encord_assets.layout.paths import verified_key
from encord_assets.lazy import pl
from encord_assets.ledger import Outcome
from encord_assets.metadata import table_metadata
from encord_assets.operations.decode import decoding_problem
from encord_assets.operations.policy import Operations
from encord_assets.operations.verified import FILES_DECODE, FILES_MATCH_MANIFEST, decode_basis, match_basis, version_column
from encord_assets.sources.registry import SourceSpec
from encord_assets.store import DatasetStore

ON_DISK = [Outcome.PLACED.value, Outcome.ALREADY_PRESENT.value]
NO_FAILED_ROWS = "no_failed_rows"
THREADS = 4


def check_result(problems: list[dict], checked: int, what: str, severity=dg.AssetCheckSeverity.ERROR, skipped: int = 0) -> dg.AssetCheckResult:
    # files_skipped: passed before and unchanged since, so not read again
    metadata = {"files_checked": checked, "files_skipped": skipped, "problems": len(problems)}
    if problems:
        metadata["first_problems"] = table_metadata(pl.DataFrame(problems), limit=20)
    return dg.AssetCheckResult(
        passed=not problems,
        severity=severity,
        metadata=metadata,
        description=f"{checked} file(s) {what} ({skipped} unchanged since they last did)" if not problems else f"{len(problems)} of {checked} file(s): {problems[0]['problem']}",
    )


def match_manifest(store: DatasetStore, sizes: dict[str, int], row: dict) -> str | None:
    size = sizes.get(row["target"])
    if size is None:
        return "missing from the layout"
    if size != row["bytes"]:
        return f"{size} bytes in the layout, manifest says {row['bytes']}"
    if store.sha256(row["target"]) != row["sha256"]:
        return "sha256 differs from the manifest"
    return None


def decode_problem(store: DatasetStore, row: dict, tolerance: float) -> str | None:
    try:
        with store.local_file(row["target"]) as path:
            return decoding_problem(path, row["target"], row["modality"], row.get("expected_duration"), tolerance)
    except OSError as error:  # a download that failed, on object storage
        return str(error)


def clip_durations(store: DatasetStore, modality: str, targets: list[str]) -> "pl.DataFrame":
    """end_time - start_time per target, from the normalized infos tables (clips only)."""
    tables = store.infos_tables(modality) if modality in ("video", "audio") else []
    if not tables:
        return pl.DataFrame(schema={"target": pl.String, "expected_duration": pl.Float64})
    return (
        pl.scan_parquet(tables)
        .filter(pl.col("target").is_in(targets) & pl.col("end_time").is_not_null())
        .group_by("target")
        .agg((pl.col("end_time") - pl.col("start_time")).first().alias("expected_duration"))
        .collect()
    )


def each_file(rows: "pl.DataFrame", test) -> list[dict]:
    """Run `test(row) -> problem | None` over rows in threads (hashing and ffmpeg release the GIL)."""
    records = list(rows.iter_rows(named=True))
    with ThreadPoolExecutor(THREADS) as pool:
        found = pool.map(test, records)
    return [{"target": row["target"], "problem": problem} for row, problem in zip(records, found, strict=True) if problem]


def each_changed_file(
    store: DatasetStore, key: str, rows: "pl.DataFrame", basis: "pl.Expr", test, versions: dict[str, tuple[int, str | None]] | None = None
) -> tuple[list[dict], int]:
    """each_file over the rows whose file is not known to have passed `test` already, and how many were
    skipped. The table at `key` keeps the files that passed, by version (which changes when the file
    is rewritten; `store.versions` of the targets unless given) and basis (what the verdict depended
    on: the manifest's size and sha256, say); a file is re-tested when either differs, or when it has
    no trusted version yet."""
    versions = store.versions(rows["target"].to_list()) if versions is None else versions
    rows = rows.with_columns(
        version=version_column(versions),
        basis=basis,
    )
    verified = store.read_parquet(key)
    known = ["target", "version", "basis"]
    todo = rows.join(verified, on=known, how="anti") if verified is not None else rows
    problems = each_file(todo, test)
    failed = [problem["target"] for problem in problems]
    passed = rows.filter(pl.col("version").is_not_null() & ~pl.col("target").is_in(failed)).select(known).sort("target")
    if verified is None or not passed.equals(verified):
        store.write(key, passed.write_parquet)
    return problems, rows.height - todo.height


def partitioned_check(**kwargs):
    """dg.asset_check with a partitions_def, without the warning that this is a preview feature."""

    def decorate(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.asset_check(**kwargs)(fn)

    return decorate


def manifest_check(spec: SourceSpec, asset: dg.AssetsDefinition, name: str, description: str, evaluate, blocking=False):
    """A check of one partition's manifest: `evaluate(spec, store, operations, manifest, verified_key)`
    (the key of its table of files that passed before); a partition
    without a manifest (never materialized, or its run died before the end) fails it."""

    @partitioned_check(asset=asset, name=name, partitions_def=asset.partitions_def, blocking=blocking, description=description)
    def check(context: dg.AssetCheckExecutionContext, store: DatasetStore, operations: Operations) -> dg.AssetCheckResult:
        manifest = store.read_manifest(spec.name, context.partition_key)
        if manifest is None:
            return dg.AssetCheckResult(passed=False, description=f"no manifest for partition {context.partition_key}")
        return evaluate(spec, store, operations, manifest, verified_key(name, spec.name, context.partition_key))

    return check


def files_on_disk(manifest: "pl.DataFrame") -> "pl.DataFrame":
    """One row per target the manifest says is in the layout."""
    return manifest.filter(pl.col("outcome").is_in(ON_DISK)).unique("target", keep="first", maintain_order=True)


def files_match_manifest(_spec: SourceSpec, store: DatasetStore, _operations: Operations, manifest: "pl.DataFrame", verified: str) -> dg.AssetCheckResult:
    rows = files_on_disk(manifest)
    versions = store.versions(rows["target"].to_list())
    sizes = {target: size for target, (size, _) in versions.items()}
    problems, skipped = each_changed_file(store, verified, rows, match_basis(), lambda row: match_manifest(store, sizes, row), versions)
    return check_result(problems, rows.height, "match the manifest", skipped=skipped)


def files_decode(spec: SourceSpec, store: DatasetStore, operations: Operations, manifest: "pl.DataFrame", verified: str) -> dg.AssetCheckResult:
    rows = files_on_disk(manifest)
    rows = rows.join(clip_durations(store, spec.modality, rows["target"].to_list()), on="target", how="left")
    tolerance = operations.duration_tolerance_ms / 1000
    problems, skipped = each_changed_file(store, verified, rows, decode_basis(tolerance), lambda row: decode_problem(store, row, tolerance))
    return check_result(problems, rows.height, "decode", skipped=skipped)


def no_failed_rows(_spec: SourceSpec, _store: DatasetStore, _operations: Operations, manifest: "pl.DataFrame", _verified: str) -> dg.AssetCheckResult:
    failed = manifest.filter(pl.col("outcome") == Outcome.FAILED.value)
    metadata = {"rows": manifest.height, "rows_failed": failed.height}
    if failed.height:
        metadata["failed_rows"] = table_metadata(failed.select("infos_file", "infos_row", "target", "error_class", "error_message"), limit=20)
    return dg.AssetCheckResult(
        passed=not failed.height, metadata=metadata, description=failure_summary(manifest) or f"none of {manifest.height} row(s) failed"
    )


def build_source_checks(spec: SourceSpec, asset: dg.AssetsDefinition) -> list[dg.AssetChecksDefinition]:
    return [
        manifest_check(
            spec, asset, NO_FAILED_ROWS,
            "Fails (and so fails the run) when rows of the partition failed transiently; names the first. "
            "The retry sensor re-runs partitions whose latest check failed.",
            no_failed_rows, blocking=True,
        ),
        manifest_check(
            spec, asset, FILES_MATCH_MANIFEST,
            "Every file the partition's manifest lists as placed or present exists with the manifest's size and sha256.",
            files_match_manifest,
        ),
        manifest_check(
            spec, asset, FILES_DECODE,
            "Placed images decode (Pillow), clips decode with the infos duration (ffmpeg), .npy arrays load (numpy).",
            files_decode,
        ),
    ]


def build_infos_check(infos_asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    modality = infos_asset.key.path[-1].removeprefix("infos_")

    @partitioned_check(
        asset=infos_asset,
        name="rows_accepted_and_routed",
        partitions_def=infos_asset.partitions_def,
        description="Fails when infos rows were rejected (ERROR) or routed to no source (WARN); lists them.",
    )
    def rows_accepted_and_routed(context: dg.AssetCheckExecutionContext, store: DatasetStore) -> dg.AssetCheckResult:
        key = rejects_key(modality, context.partition_key)
        rejects = store.read_csv(key)
        rejects = rejects if rejects is not None else pl.DataFrame(schema={"kind": pl.String})
        kinds = dict(rejects.group_by("kind").len().iter_rows()) if rejects.height else {}
        rejected, unrouted = kinds.get("rejected", 0), kinds.get("unrouted", 0)
        metadata = {"rejected": rejected, "unrouted": unrouted}
        if rejects.height:
            metadata["rows"] = table_metadata(rejects, limit=50)
            metadata["rejects_file"] = dg.MetadataValue.path(store.uri(key))
        return dg.AssetCheckResult(
            passed=not rejects.height,
            severity=dg.AssetCheckSeverity.ERROR if rejected else dg.AssetCheckSeverity.WARN,
            metadata=metadata,
            description=f"{rejected} row(s) rejected, {unrouted} routed to no source",
        )

    return rows_accepted_and_routed
