"""The dataset IO manager: checks each staged file, has the store place it at
ROOT/<save_folder>/<dir>/<file_name> (a rename on a local ROOT, a conditional create on object
storage), and writes the partition manifest last, as the completion marker: one row per infos row.
"""

import os
import shutil
import stat
import time

import dagster as dg

from encord_assets.layout.paths import manifest_key, unsafe_layout_keys
from encord_assets.lazy import pl
from encord_assets.ledger import RESULT_SCHEMA, Outcome, PartitionFetch
from encord_assets.metadata import table_metadata
from encord_assets.operations.verified import Verified, record_placed
from encord_assets.store import DatasetStore
from encord_assets.store.backends import sha256_of

MANIFEST_COLUMNS = (
    "split",
    "modality",
    "source",
    "source_dataset",
    "infos_file",
    "infos_row",
    "row_id",
    "target",
    "outcome",
    "bytes",
    "sha256",
    "error_class",
    "error_message",
)


def _check(staged: dict, unsafe: dict[str, str], verified: dict[str, Verified]) -> tuple[dict, Verified | None]:
    """A staged file's result row before placing: failed or rejected, or with its size and sha256;
    and its verification while fetching, when the file is unchanged since (its sha256 is reused).
    `unsafe`: the refused targets of the partition, each with its reason."""
    result = {**staged, "staged_path": None}
    if (reason := unsafe.get(staged["target"])) is not None:
        return {**result, "outcome": Outcome.REJECTED.value, "error_class": "unsafe_path", "error_message": reason}, None
    path = staged["staged_path"]
    try:
        info = os.stat(path)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        message = f"staged file {os.path.basename(path)} is missing"
        return {**result, "outcome": Outcome.FAILED.value, "error_class": "staging_lost", "error_message": message}, None
    size = info.st_size
    expected = staged["expected_size"]
    if size == 0 or (expected is not None and size != expected):
        return {
            **result,
            "outcome": Outcome.FAILED.value,
            "error_class": "size_mismatch",
            "error_message": f"staged {size} bytes, upstream announced {expected}",
        }, None
    known = verified.get(path)
    known = known if known is not None and known.unchanged(info) else None
    sha256 = known.sha256 if known is not None else sha256_of(path)
    return {**result, "staged_path": path, "outcome": "checked", "bytes": size, "sha256": sha256}, known


def place_staged(store: DatasetStore, fetched: "pl.DataFrame", verified: dict[str, Verified] | None = None) -> tuple[list[dict], "pl.DataFrame"]:
    """Final result rows for the ledger's rows: staged files checked and placed, the rest as recorded;
    and the placed files that were verified while fetching (target, bytes, sha256, decodes, staged_version)."""
    unsafe = unsafe_layout_keys(fetched.filter(pl.col("outcome") == "staged")["target"])
    checks = [_check(row, unsafe, verified or {}) if row["outcome"] == "staged" else (row, None) for row in fetched.iter_rows(named=True)]
    rows = [row for row, _ in checks]
    checked = [(row, known) for row, known in checks if row["outcome"] == "checked"]
    reused = []
    for (row, known), placed in zip(checked, store.place_all([row for row, _ in checked]), strict=True):
        row["staged_path"] = None
        if isinstance(placed, BaseException):
            row.update(outcome=Outcome.FAILED.value, error_class="place_failed", error_message=f"{type(placed).__name__}: {placed}")
            continue
        row["outcome"], row["bytes"] = placed
        if known is not None and row["outcome"] == Outcome.PLACED.value:
            reused.append({"target": row["target"], "bytes": row["bytes"], "sha256": row["sha256"], "decodes": known.decodes, "staged_version": known.version})
    schema = {"target": pl.String, "bytes": pl.Int64, "sha256": pl.String, "decodes": pl.Boolean, "staged_version": pl.String}
    return rows, pl.DataFrame(reused, schema=schema)


def build_manifest(fetch: PartitionFetch, results: "pl.DataFrame") -> "pl.DataFrame":
    """One row per infos row of the partition, each with exactly one outcome."""
    per_target = results.select("target", "outcome", "bytes", "sha256", "error_class", "error_message")
    manifest = fetch.rows.join(per_target, on="target", how="left").with_columns(
        pl.col("outcome").fill_null(Outcome.FAILED.value),
        pl.when(pl.col("outcome").is_null()).then(pl.lit("no_outcome")).otherwise(pl.col("error_class")).alias("error_class"),
        pl.when(pl.col("outcome").is_null())
        .then(pl.lit("the fetcher recorded no outcome for this row"))
        .otherwise(pl.col("error_message"))
        .alias("error_message"),
    )
    return manifest.select(MANIFEST_COLUMNS).sort("infos_file", "infos_row")


def failure_summary(manifest: "pl.DataFrame") -> str | None:
    """'N row(s) failed ...; first: <file> row <n> (<target>): <class>: <message>', or None when no row failed."""
    failed = manifest.filter(pl.col("outcome") == Outcome.FAILED.value)
    if not failed.height:
        return None
    first = failed.row(0, named=True)
    return (
        f"{failed.height} row(s) failed transiently and will be retried; first: {first['infos_file']} row "
        f"{first['infos_row']} ({first['target']}): {first['error_class']}: {first['error_message']}"
    )


def summarize(manifest: "pl.DataFrame") -> dict[str, int]:
    counts = dict(manifest.group_by("outcome").len().iter_rows())
    return {outcome.value: counts.get(outcome.value, 0) for outcome in Outcome}


class DatasetIOManager(dg.ConfigurableIOManager):
    """Places staged files into the layout and records the partition manifest."""

    store: dg.ResourceDependency[DatasetStore]

    def handle_output(self, context: dg.OutputContext, fetch: PartitionFetch) -> None:
        started = time.monotonic()
        try:
            placed, verified = place_staged(self.store, fetch.ledger.results(), fetch.ledger.verified())
        except BaseException:
            shutil.rmtree(fetch.ledger.staging_dir, ignore_errors=True)
            raise
        results = pl.concat([fetch.prior, pl.DataFrame(placed, schema=RESULT_SCHEMA)])
        manifest = build_manifest(fetch, results)
        path = self.store.uri(manifest_key(fetch.asset_name, fetch.partition_key))
        try:
            self.store.write_manifest(fetch.asset_name, fetch.partition_key, manifest)
        except (OSError, pl.exceptions.ComputeError) as error:  # polars reports a full disk as a ComputeError
            raise dg.Failure(
                description=f"could not write the manifest {path}: {error}; the files placed so far are found by the next run",
                # a full disk is not freed by an immediate step retry; the retry sensor re-runs the partition later
                allow_retries=False,
            ) from error
        finally:
            shutil.rmtree(fetch.ledger.staging_dir, ignore_errors=True)

        files_verified = 0
        try:
            files_verified = record_placed(self.store, fetch.asset_name, fetch.partition_key, verified) if verified.height else 0
        except (OSError, pl.exceptions.ComputeError) as error:  # the checks then read these files themselves
            context.log.warning(f"could not record the files verified while fetching: {error}")
        counts = summarize(manifest)
        new = results.filter(pl.col("outcome") == Outcome.PLACED.value)
        bytes_placed = int(new["bytes"].sum() or 0)
        problems = manifest.filter(pl.col("outcome").is_in([Outcome.UNAVAILABLE.value, Outcome.FAILED.value, Outcome.REJECTED.value]))
        metadata = {
            **{f"rows_{name}": count for name, count in counts.items()},
            "rows": manifest.height,
            "bytes_fetched": fetch.ledger.bytes_fetched,
            "bytes_placed": bytes_placed,
            "fetch_to_placed_ratio": round(fetch.ledger.bytes_fetched / bytes_placed, 4) if bytes_placed else 0.0,
            "requests": fetch.ledger.requests,
            "fetch_seconds": round(fetch.elapsed_seconds, 3),
            "place_seconds": round(time.monotonic() - started, 3),
            # placed files verified while fetching: the checks after this step do not read them again
            "files_verified_staged": files_verified,
            "manifest": dg.MetadataValue.path(path),
            **{f"note_{k}": v for k, v in fetch.ledger.notes.items()},
            **fetch.ledger.choice_metadata(),
        }
        if problems.height:
            metadata["problems"] = table_metadata(
                problems.select("infos_file", "infos_row", "target", "outcome", "error_class", "error_message"), limit=20
            )
        # Rows that failed transiently are recorded with the rest: the partition's latest
        # materialization shows its current outcomes, and the blocking `no_failed_rows` check
        # fails the run (the retry sensor re-runs the partition).
        failures = failure_summary(manifest)
        if failures:
            metadata["failed"] = failures
        context.add_output_metadata(metadata)

    def load_input(self, context: dg.InputContext) -> "pl.DataFrame":
        name = context.upstream_output.asset_key.path[-1]
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        frames = [self.store.read_manifest(name, key) for key in keys]
        frames = [frame for frame in frames if frame is not None]
        return pl.concat(frames) if frames else pl.DataFrame(schema={c: pl.String for c in MANIFEST_COLUMNS})
