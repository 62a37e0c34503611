"""Release create and pull at scale: N synthetic placed rows on a local ROOT, each step in its own process.

    uv run python benchmarks/release_scale.py --rows 100000

Baselines in the same run: for create, an eager read of every manifest joined with the infos table
(`pl.read_parquet`, no products, no filters); for pull, a plain loop that copies each file and hashes it.
"""

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from infos_scale import sample_anonymous_peak

PARTITIONS = 100


def build_root(root: Path, rows: int) -> None:
    from encord_assets.infos.normalize import ROW_SCHEMA
    from encord_assets.layout.io_manager import MANIFEST_COLUMNS
    from encord_assets.layout.paths import table_key
    from encord_assets.store import DatasetStore

    store = DatasetStore(root=str(root))
    n = pl.int_range(rows, eager=True)
    infos = pl.DataFrame({"row_id": n}).with_columns(
        pl.lit("e-mm1_100m").alias("split"), pl.lit("image").alias("modality"), pl.lit("image.csv").alias("infos_file"),
        (pl.col("row_id") + 1).alias("infos_row"), pl.lit("COCO").alias("source_dataset"),
        pl.when(pl.col("row_id") % 5 == 0).then(pl.lit("MIT")).otherwise(pl.lit("CC-BY-4.0")).alias("dataset_license"),
        pl.lit("image_coco").alias("source"), pl.col("row_id").cast(pl.String).alias("file_id"),
        pl.lit("e-mm1_100m_only").alias("save_folder"), (pl.col("row_id").cast(pl.String) + ".jpg").alias("file_name"),
    ).with_columns(
        (pl.col("save_folder") + "/image/" + pl.col("file_name")).alias("target"),
        (pl.col("row_id") % PARTITIONS).cast(pl.String).str.zfill(3).alias("partition_key"),
    )
    infos = infos.with_columns([pl.lit(None, dtype).alias(c) for c, dtype in ROW_SCHEMA.items() if c not in infos.columns]).select(list(ROW_SCHEMA))
    store.write(table_key("infos_image", "e-mm1_100m"), infos.write_parquet)
    folder = root / "e-mm1_100m_only" / "image"
    folder.mkdir(parents=True)
    digests = []
    for row in range(rows):
        data = f"image {row}\n".encode() * 20
        (folder / f"{row}.jpg").write_bytes(data)
        digests.append(hashlib.sha256(data).hexdigest())
    manifest = infos.with_columns(
        pl.lit("placed").alias("outcome"), pl.lit(len(b"image 0\n") * 20, pl.Int64).alias("bytes"), pl.Series("sha256", digests),
        pl.lit(None, pl.String).alias("error_class"), pl.lit(None, pl.String).alias("error_message"),
    )
    for (key,), part in manifest.group_by("partition_key"):
        store.write_manifest("image_coco", f"{key}|e-mm1_100m", part.select(MANIFEST_COLUMNS))


def child(which: str, root: str, folder: str) -> None:
    from encord_assets.store import DatasetStore

    peak: dict = {}
    sample_anonymous_peak(peak)
    store = DatasetStore(root=root)
    started = time.monotonic()
    if which == "create":
        from encord_assets.products.releases import Filters, create_release

        create_release(store, Path(folder), "bench", Filters())
    elif which == "create_baseline":
        from encord_assets.products.items import ON_DISK

        manifests = pl.concat([pl.read_parquet(p) for p in sorted(Path(root, "_encord_assets", "manifests").rglob("*.parquet"))])
        infos = pl.read_parquet(Path(root, "_encord_assets", "tables", "infos_image", "e-mm1_100m.parquet"))
        manifests.filter(pl.col("outcome").is_in(ON_DISK)).join(infos, on=["split", "modality", "row_id"]).write_parquet(Path(folder) / "files.parquet")
    elif which in ("pull", "pull_again"):
        from encord_assets.products.pull import pull_release

        report = pull_release(store, "bench", Path(folder))
        assert not report.problems, report.problems[:3]
    elif which == "pull_baseline":
        files = pl.read_parquet(Path(root, "_encord_assets", "releases", "bench", "files.parquet"))
        for target, sha256 in files.select("target", "sha256").iter_rows():
            dest = Path(folder, target)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(root, target), dest)
            assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha256
    seconds = time.monotonic() - started
    time.sleep(0.02)
    print(f"{seconds} {peak['anon']}")


def measure(which: str, root: Path, folder: Path) -> tuple[float, float]:
    result = subprocess.run([sys.executable, __file__, "--child", which, str(root), str(folder)], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{which} failed:\n{result.stderr}")
    seconds, anonymous = result.stdout.split()
    return float(seconds), float(anonymous)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root, infos, out, copy, baseline = (Path(tmp) / name for name in ("root", "infos", "pulled", "copied", "baseline"))
        for folder in (infos, baseline):
            folder.mkdir()
        started = time.monotonic()
        build_root(root, args.rows)
        print(f"{args.rows:,} placed rows in {PARTITIONS} manifests, built in {time.monotonic() - started:.1f} s")
        print(f"{'step':<44}{'seconds':>9}{'peak anon MB':>14}")
        results = {}
        for which, folder, label in (
            ("create_baseline", baseline, "baseline: eager read of manifests + infos"),
            ("create", infos, "release create"),
            ("pull_baseline", copy, "baseline: copy + sha256 loop"),
            ("pull", out, "release pull (hard links, sha256 checked)"),
            ("pull_again", out, "release pull, files unchanged (skipped)"),
        ):
            results[which] = measure(which, root, folder)
            print(f"{label:<44}{results[which][0]:>9.2f}{results[which][1]:>14.0f}")
        print(
            f"create / baseline: {results['create'][0] / results['create_baseline'][0]:.2f}x time; "
            f"pull / baseline: {results['pull'][0] / results['pull_baseline'][0]:.2f}x; "
            f"unchanged pull / baseline: {results['pull_again'][0] / results['pull_baseline'][0]:.2f}x"
        )


if __name__ == "__main__":
    main()
