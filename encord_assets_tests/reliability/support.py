"""Helpers shared by the reliability tests: every source of the registry, run to completion."""

import os
import subprocess
from pathlib import Path

import polars as pl
import polars_hash as plh

from encord_assets.infos.files import MODALITIES, infos_file, splits_for
from encord_assets.infos.normalize import normalize
from encord_assets.layout.paths import BOOKKEEPING_DIR, staging_key, target_expr
from encord_assets.sources.registry import SOURCES, SourceSpec
from encord_assets.store import DatasetStore

# Every fetcher of the registry (each has its upstream emulated on the mirror): sources added later are covered as is.
# Sources that locate their rows at run time (Objaverse: 160 archives, no id mapping) and sources
# whose rows do not come from infos (Open Images) are held to these promises by their own tests
# (encord_assets_tests/sources/test_openshape.py, test_openimages.py).
TESTED_SPECS = [spec for spec in SOURCES if spec.from_infos and not spec.locates_rows]
FETCHERS = sorted({spec.fetcher for spec in TESTED_SPECS})

# Short client timeouts and backoffs per fetcher (a fetcher not listed keeps its defaults: the mirror's
# stalls are short, so it still finishes, only slower). Each entry is one variant of the fetcher to run.
FAST_SETTINGS: dict[str, dict[str, dict[str, str]]] = {
    "coco": {
        "zip": {"COCO_METHOD": "ranges", "COCO_TIMEOUT_SECONDS": "1", "COCO_ATTEMPTS": "4", "COCO_BACKOFF_SECONDS": "0.05"},
        "images": {"COCO_METHOD": "images", "COCO_TIMEOUT_SECONDS": "1", "COCO_ATTEMPTS": "4", "COCO_BACKOFF_SECONDS": "0.05"},
    },
    "youtube": {
        "": {"YOUTUBE_SOCKET_TIMEOUT": "1", "YOUTUBE_ATTEMPTS": "4", "YOUTUBE_BACKOFF_SECONDS": "0.05"},
    },
}


def fetcher_variants() -> list[tuple[str, str, dict[str, str]]]:
    """(test id, fetcher, settings) for every fetcher variant to put through the reliability tests."""
    variants = []
    for fetcher in FETCHERS:
        for name, settings in FAST_SETTINGS.get(fetcher, {"": {}}).items():
            variants.append((f"{fetcher}-{name}" if name else fetcher, fetcher, settings))
    return variants


def specs_of(fetcher: str) -> list[SourceSpec]:
    return [spec for spec in TESTED_SPECS if spec.fetcher == fetcher]


def modalities_of(specs: list[SourceSpec]) -> list[str]:
    return sorted({spec.modality for spec in specs})


def prepare(materializer, specs: list[SourceSpec]) -> None:
    """Materialize what the source assets of `specs` read: their infos assets and their index assets."""
    materializer.infos(*modalities_of(specs))
    for index in sorted({spec.index for spec in specs if spec.index}):
        materializer.run(index, raise_on_error=True)


def partitions_of(materializer, specs: list[SourceSpec]) -> list[tuple[str, str]]:
    """(asset, partition) for every non-empty partition of `specs` (their infos must be materialized)."""
    return [(spec.name, key) for spec in specs for key in materializer.source_partitions(spec.name, spec.modality)]


def store_of(root: Path | str) -> DatasetStore:
    """The store of a local or s3:// ROOT, with the scratch folder the runs under test use."""
    return DatasetStore(root=str(root), scratch_dir=os.environ.get("ENCORD_SCRATCH_DIR", ""))


def manifest(root: Path | str, asset: str, key: str) -> pl.DataFrame | None:
    return store_of(root).read_manifest(asset, key)


def layout_files(root: Path | str) -> dict[str, str]:
    """target -> sha256 of every file (or object) in the layout (bookkeeping excluded)."""
    store = store_of(root)
    return {key: store.sha256(key) for key in store.find("") if not key.startswith(f"{BOOKKEEPING_DIR}/")}


def staging_dir(root: Path | str, asset: str, key: str) -> Path:
    """The local folder holding the staging folders of a partition's runs."""
    return store_of(root).backend.staging_base() / staging_key(asset, key)


def staging_leftovers(root: Path | str) -> list[Path]:
    staging = store_of(root).backend.staging_base() / BOOKKEEPING_DIR / "staging"
    return [p for p in staging.rglob("*") if p.is_file()] if staging.exists() else []


def settle(materializer, root: Path | str, partitions: list[tuple[str, str]], max_rounds: int) -> list[dict[str, set[str]]]:
    """Run every partition, then re-run the failed ones (what the retry sensor does) until all succeed.

    Returns, per round, the targets each run recorded as `placed`; the partitions still failing raise.
    """
    rounds = []
    todo = list(partitions)
    for _ in range(max_rounds):
        placed: dict[str, set[str]] = {}
        failed = []
        for asset, key in todo:
            result = materializer.run(asset, key)
            found = manifest(root, asset, key)
            if found is not None:
                placed[f"{asset} {key}"] = set(found.filter(pl.col("outcome") == "placed")["target"])
            if not result.success:
                failed.append((asset, key))
        rounds.append(placed)
        todo = failed
        if not todo:
            return rounds
    raise AssertionError(f"still failing after {max_rounds} rounds: {todo}")


def materialize_command(asset: str, partition: str) -> list[str]:
    return ["dagster", "asset", "materialize", "-m", "encord_assets.definitions", "--select", asset, "--partition", partition]


def start_materialize(asset: str, partition: str, log_path: Path, env: dict | None = None) -> subprocess.Popen:
    """The real CLI in its own process group, so a kill takes its children (ffmpeg) too."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            materialize_command(asset, partition),
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or os.environ.copy(),
        )


def pack_infos(infos_dir: Path) -> None:
    """Rename `file_name`s in place so that every source's rows of a split fall in one partition (shard 0).

    The bundled sample spreads ~50 rows over ~45 partitions; one Dagster run per partition would
    dominate these tests, while the upstream work (ids, times) stays exactly the sample's.
    """
    shards = {spec.name: spec.shards for spec in SOURCES}
    for modality in MODALITIES:
        if modality == "text":
            continue
        for split in splits_for(modality):
            path = infos_file(infos_dir, split, modality)
            if path is None:
                continue
            routed = normalize(path, path.name, split, modality).rows.collect().filter(pl.col("source").is_in(list(shards)))
            candidates = (
                routed.select("infos_row", "modality", "save_folder", "file_name", "source")
                .with_columns(n=pl.int_ranges(0, pl.col("source").replace_strict(shards) * 12))
                .explode("n")
                .with_columns(
                    file_name=pl.format("{}-{}{}", pl.col("file_name").str.replace(r"\.[^.]*$", ""), "n", pl.col("file_name").str.extract(r"(\.[^.]*)$")),
                )
                .with_columns(target_expr().alias("target"))
                .filter(plh.col("target").nchash.xxhash64() % pl.col("source").replace_strict(shards).cast(pl.UInt64) == 0)
                .group_by("infos_row")
                .agg(pl.col("file_name").first().alias("packed_name"))
            )
            raw = pl.read_csv(path, infer_schema=False).with_row_index("infos_row", offset=1).with_columns(pl.col("infos_row").cast(pl.Int64))
            packed = raw.join(candidates, on="infos_row", how="left").with_columns(
                pl.coalesce("packed_name", "file_name").alias("file_name")
            )
            packed.select(raw.columns[1:]).write_csv(path)
