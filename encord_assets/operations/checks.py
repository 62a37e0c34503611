"""Asset checks built from the registry: placed files match their manifest and decode; infos
rows were all accepted and routed."""

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import polars as pl

from encord_assets.infos.assets import rejects_path
from encord_assets.layout.io_manager import failure_summary
from encord_assets.layout.outcomes import Outcome
from encord_assets.layout.paths import bookkeeping_dir
from encord_assets.layout.plan import read_manifest, sha256_of
from encord_assets.metadata import table_metadata
from encord_assets.operations.decode import Undecodable, decoder_for
from encord_assets.operations.settings import Operations
from encord_assets.settings import DataRoot
from encord_assets.sources.registry import SourceSpec

ON_DISK = [Outcome.PLACED.value, Outcome.ALREADY_PRESENT.value]
NO_FAILED_ROWS = "no_failed_rows"
THREADS = 4


def files_on_disk(root: Path, asset_name: str, partition_key: str) -> pl.DataFrame | None:
    """One row per target the manifest says is in the layout (None when the partition has no manifest)."""
    manifest = read_manifest(root, asset_name, partition_key)
    if manifest is None:
        return None
    return manifest.filter(pl.col("outcome").is_in(ON_DISK)).unique("target", keep="first", maintain_order=True)


def check_result(problems: list[dict], checked: int, what: str, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    metadata = {"files_checked": checked, "problems": len(problems)}
    if problems:
        metadata["first_problems"] = table_metadata(pl.DataFrame(problems), limit=20)
    return dg.AssetCheckResult(
        passed=not problems,
        severity=severity,
        metadata=metadata,
        description=f"{checked} file(s) {what}" if not problems else f"{len(problems)} of {checked} file(s): {problems[0]['problem']}",
    )


def match_manifest(root: Path, row: dict) -> str | None:
    path = root / row["target"]
    if not path.is_file():
        return "missing from the layout"
    size = path.stat().st_size
    if size != row["bytes"]:
        return f"{size} bytes on disk, manifest says {row['bytes']}"
    if sha256_of(path) != row["sha256"]:
        return "sha256 differs from the manifest"
    return None


def decode_problem(root: Path, row: dict, tolerance: float) -> str | None:
    path = root / row["target"]
    decode = decoder_for(path, row["modality"])
    if decode is None:
        return None
    try:
        found = decode(path)
    except (Undecodable, OSError) as error:
        return str(error)
    expected = row.get("expected_duration")
    if "duration" in found and expected is not None and abs(found["duration"] - expected) > tolerance:
        return f"decodes to {found['duration']:.2f} s, infos say {expected:.2f} s"
    return None


def clip_durations(root: Path, modality: str, targets: list[str]) -> pl.DataFrame:
    """end_time - start_time per target, from the normalized infos tables (clips only)."""
    tables = sorted((bookkeeping_dir(root) / "tables" / f"infos_{modality}").glob("*.parquet"))
    if not tables or modality not in ("video", "audio"):
        return pl.DataFrame(schema={"target": pl.String, "expected_duration": pl.Float64})
    return (
        pl.scan_parquet(tables)
        .filter(pl.col("target").is_in(targets) & pl.col("end_time").is_not_null())
        .group_by("target")
        .agg((pl.col("end_time") - pl.col("start_time")).first().alias("expected_duration"))
        .collect()
    )


def each_file(rows: pl.DataFrame, test) -> list[dict]:
    """Run `test(row) -> problem | None` over rows in threads (hashing and ffmpeg release the GIL)."""
    records = list(rows.iter_rows(named=True))
    with ThreadPoolExecutor(THREADS) as pool:
        found = pool.map(test, records)
    return [{"target": row["target"], "problem": problem} for row, problem in zip(records, found, strict=True) if problem]


def partitioned_check(**kwargs):
    """dg.asset_check with a partitions_def, without the warning that this is a preview feature (DESIGN §4)."""

    def decorate(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.asset_check(**kwargs)(fn)

    return decorate


def build_source_checks(spec: SourceSpec, asset: dg.AssetsDefinition) -> list[dg.AssetChecksDefinition]:
    @partitioned_check(
        asset=asset,
        name="files_match_manifest",
        partitions_def=asset.partitions_def,
        description="Every file the partition's manifest lists as placed or present exists with the manifest's size and sha256.",
    )
    def files_match_manifest(context: dg.AssetCheckExecutionContext, data_root: DataRoot) -> dg.AssetCheckResult:
        root = data_root.root_path
        rows = files_on_disk(root, spec.name, context.partition_key)
        if rows is None:
            return dg.AssetCheckResult(passed=False, description=f"no manifest for partition {context.partition_key}")
        return check_result(each_file(rows, lambda row: match_manifest(root, row)), rows.height, "match the manifest")

    @partitioned_check(
        asset=asset,
        name="files_decode",
        partitions_def=asset.partitions_def,
        description="Placed images decode (Pillow), clips decode with the infos duration (ffmpeg), .npy arrays load (numpy).",
    )
    def files_decode(context: dg.AssetCheckExecutionContext, data_root: DataRoot, operations: Operations) -> dg.AssetCheckResult:
        root = data_root.root_path
        rows = files_on_disk(root, spec.name, context.partition_key)
        if rows is None:
            return dg.AssetCheckResult(passed=False, description=f"no manifest for partition {context.partition_key}")
        rows = rows.join(clip_durations(root, spec.modality, rows["target"].to_list()), on="target", how="left")
        tolerance = operations.duration_tolerance_ms / 1000
        return check_result(each_file(rows, lambda row: decode_problem(root, row, tolerance)), rows.height, "decode")

    @partitioned_check(
        asset=asset,
        name=NO_FAILED_ROWS,
        partitions_def=asset.partitions_def,
        blocking=True,
        description="Fails (and so fails the run) when rows of the partition failed transiently; names the first. "
        "The retry sensor re-runs partitions whose latest check failed.",
    )
    def no_failed_rows(context: dg.AssetCheckExecutionContext, data_root: DataRoot) -> dg.AssetCheckResult:
        manifest = read_manifest(data_root.root_path, spec.name, context.partition_key)
        if manifest is None:
            return dg.AssetCheckResult(passed=False, description=f"no manifest for partition {context.partition_key}")
        failed = manifest.filter(pl.col("outcome") == Outcome.FAILED.value)
        metadata = {"rows": manifest.height, "rows_failed": failed.height}
        if failed.height:
            metadata["failed_rows"] = table_metadata(
                failed.select("infos_file", "infos_row", "target", "error_class", "error_message"), limit=20
            )
        return dg.AssetCheckResult(
            passed=not failed.height,
            metadata=metadata,
            description=failure_summary(manifest) or f"none of {manifest.height} row(s) failed",
        )

    return [no_failed_rows, files_match_manifest, files_decode]


def build_infos_check(infos_asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    modality = infos_asset.key.path[-1].removeprefix("infos_")

    @partitioned_check(
        asset=infos_asset,
        name="rows_accepted_and_routed",
        partitions_def=infos_asset.partitions_def,
        description="Fails when infos rows were rejected (ERROR) or routed to no source (WARN); lists them.",
    )
    def rows_accepted_and_routed(context: dg.AssetCheckExecutionContext, data_root: DataRoot) -> dg.AssetCheckResult:
        path = rejects_path(data_root, modality, context.partition_key)
        rejects = pl.read_csv(path, infer_schema=False) if path.exists() else pl.DataFrame(schema={"kind": pl.String})
        kinds = dict(rejects.group_by("kind").len().iter_rows()) if rejects.height else {}
        rejected, unrouted = kinds.get("rejected", 0), kinds.get("unrouted", 0)
        metadata = {"rejected": rejected, "unrouted": unrouted}
        if rejects.height:
            metadata["rows"] = table_metadata(rejects, limit=50)
            metadata["rejects_file"] = dg.MetadataValue.path(str(path))
        return dg.AssetCheckResult(
            passed=not rejects.height,
            severity=dg.AssetCheckSeverity.ERROR if rejected else dg.AssetCheckSeverity.WARN,
            metadata=metadata,
            description=f"{rejected} row(s) rejected, {unrouted} routed to no source",
        )

    return rows_accepted_and_routed
