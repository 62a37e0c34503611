"""Peak memory and time of infos normalization on a large synthetic image.csv, against the
guide's approach (pl.read_csv of the whole file), each in its own process.

    uv run python benchmarks/infos_scale.py [--rows 5000000]

The real E-MM1 image.csv is 613 MB; the default size here is about a third of it.
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl


def make_csv(path: Path, rows: int) -> None:
    """Realistic rows (COCO, ImageNet, Flickr30k, GCC), a few bad ones, written by polars."""
    n = pl.int_range(0, rows, eager=True)
    kind = n % 4
    file_id = (
        pl.when(kind == 0).then(n.cast(pl.String))
        .when(kind == 1).then(pl.format("n{}_{}", (n % 1000 + 1440764).cast(pl.String).str.zfill(8), n))
        .when(kind == 2).then((n + 1000000000).cast(pl.String))
        .otherwise(pl.format("http://img{}.example.com/photos/2018/{}.jpg", n % 50, n))
    )
    source = pl.when(kind == 0).then(pl.lit("COCO")).when(kind == 1).then(pl.lit("ImageNet")).when(kind == 2).then(pl.lit("Flickr30k")).otherwise(pl.lit("Google Conceptual Captions"))
    frame = pl.select(
        encord_image_id=n,
        source_dataset=source,
        dataset_license=pl.lit("CC-BY-4.0"),
        file_id=file_id,
        file_name=pl.when(n % 100_000 == 7).then(pl.lit("../escape.jpg")).otherwise(pl.format("img_{}.jpg", n)),
        save_folder=pl.when(n % 3 == 0).then(pl.lit("shared")).otherwise(pl.lit("e-mm1_100m_only")),
    )
    frame.write_csv(path)


def cpu_seconds() -> float:
    """User and system time of this process: on a machine others load too, the wall-clock ratio
    moves with their work, this one much less."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sample_anonymous_peak(peak: dict) -> None:
    """Peak RssAnon: memory the process holds, without the file pages the CSV reader maps."""
    import threading

    def sample() -> None:
        while True:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("RssAnon:"):
                        peak["anon"] = max(peak.get("anon", 0), int(line.split()[1]) // 1024)
            time.sleep(0.005)

    threading.Thread(target=sample, daemon=True).start()


def ours(csv: str, out: str) -> None:
    """As the infos asset does it: normalize in a work folder (rejects and counts per partition),
    then the rows table moved into place (as the table IO manager does with a written file)."""
    import shutil

    from encord_assets.infos.normalize import normalize

    peak: dict = {}
    sample_anonymous_peak(peak)
    started, cpu = time.monotonic(), cpu_seconds()
    with tempfile.TemporaryDirectory(dir=Path(out).parent) as work_dir:
        infos = normalize(Path(csv), "image.csv", "e-mm1_100m", "image", work_dir=Path(work_dir))
        shutil.move(infos.rows_file, out)
    seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu
    time.sleep(0.02)
    print(f"{(infos.rejects['kind'] == 'rejected').sum()} {peak['anon']} {seconds} {cpu}")


def guide(csv: str, out: str) -> None:
    peak: dict = {}
    sample_anonymous_peak(peak)
    started, cpu = time.monotonic(), cpu_seconds()
    frame = pl.read_csv(csv)
    frame.write_parquet(out)
    seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu
    time.sleep(0.02)
    print(f"0 {peak['anon']} {seconds} {cpu}")


def streaming_scan(csv: str, out: str) -> None:
    """The floor: the same file through a streaming polars scan into parquet, no validation."""
    peak: dict = {}
    sample_anonymous_peak(peak)
    started, cpu = time.monotonic(), cpu_seconds()
    pl.scan_csv(csv, infer_schema=False).sink_parquet(out)
    seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu
    time.sleep(0.02)
    print(f"0 {peak['anon']} {seconds} {cpu}")


def table_only(csv: str, out: str) -> None:
    """The bound of ours: the same 16-column table (ids, canonical dataset, source, target, partition
    key), written as ours writes it, with no rule judged and nothing collected on the way."""
    from encord_assets.infos.datasets import canonical_expr, lookup
    from encord_assets.infos.normalize import ROW_COLUMNS
    from encord_assets.layout.paths import target_expr
    from encord_assets.sources.partitions import source_partition_keys
    from encord_assets.sources.registry import sources_for

    peak: dict = {}
    sample_anonymous_peak(peak)
    started, cpu = time.monotonic(), cpu_seconds()
    specs = sources_for("image")
    keys, position = source_partition_keys(specs, "e-mm1_100m")
    dataset = canonical_expr(pl.col("source_dataset").str.strip_chars().str.to_lowercase(), "image")
    (
        pl.scan_csv(csv, infer_schema=False)
        .with_row_index("infos_row", offset=1)
        .with_columns(
            pl.lit("e-mm1_100m").alias("split"),
            pl.lit("image").alias("modality"),
            pl.lit("image.csv").alias("infos_file"),
            pl.col("infos_row").cast(pl.Int64),
            pl.col("encord_image_id").cast(pl.Int64, strict=False).alias("row_id"),
            dataset.alias("source_dataset"),
            *[pl.lit(None, dtype=dtype).alias(c) for c, dtype in (("youtube_id", pl.String), ("start_time", pl.Float64), ("end_time", pl.Float64))],
        )
        .with_columns(lookup(pl.col("source_dataset"), {s.dataset: s.name for s in specs}).cast(pl.String).alias("source"), target_expr().alias("target"))
        .with_columns(pl.lit(keys["partition_key"]).gather(position).alias("partition_key"))
        .select(ROW_COLUMNS)
        .sink_parquet(out, compression="zstd", compression_level=1, statistics=False)
    )
    seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu
    time.sleep(0.02)
    print(f"0 {peak['anon']} {seconds} {cpu}")


def measure(which: str, csv: Path, out: Path) -> tuple[float, float, float, int]:
    """(seconds of the work itself, without the child's imports; its CPU seconds; peak anonymous MB;
    rows rejected)."""
    result = subprocess.run([sys.executable, __file__, "--child", which, str(csv), str(out)], capture_output=True, text=True, check=True)
    rejects, anonymous, seconds, cpu = result.stdout.split()
    return float(seconds), float(cpu), float(anonymous), int(rejects)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_500_000)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        {"ours": ours, "guide": guide, "scan": streaming_scan, "table": table_only}[args.child[0]](*args.child[1:])
        return
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "image.csv"
        make_csv(csv, args.rows)
        size_mb = csv.stat().st_size / 2**20
        print(f"image.csv: {args.rows:,} rows, {size_mb:.0f} MB")
        # ru_maxrss survives exec on Linux (it would report this parent's peak), so only RssAnon is shown.
        print(f"{'approach':<36}{'seconds':>8}{'CPU s':>7}{'peak anon MB':>14}{'peak / file':>13}")
        results = {}
        approaches = (
            ("guide", "guide: pl.read_csv (eager)"),
            ("scan", "baseline: scan_csv -> sink_parquet"),
            ("table", "bound: our table, no rules"),
            ("ours", "ours: validate + normalize"),
        )
        for which, label in approaches:
            seconds, cpu, anonymous, rejects = measure(which, csv, Path(tmp) / f"{which}.parquet")
            results[which] = (seconds, cpu, anonymous)
            print(f"{label:<36}{seconds:>8.1f}{cpu:>7.1f}{anonymous:>14.0f}{anonymous / size_mb:>12.2f}x")
        (ours_s, ours_cpu, ours_mb), (scan_s, scan_cpu, _), guide_mb = results["ours"], results["scan"], results["guide"][2]
        table_s, table_cpu, _ = results["table"]
        print(
            f"rows rejected by ours: {rejects:,}; anonymous peak ours / guide: {ours_mb / guide_mb:.2f}; "
            f"time ours / baseline scan: {ours_s / scan_s:.2f} (CPU {ours_cpu / scan_cpu:.2f}); peak ours / file: {ours_mb / size_mb:.2f}; "
            f"bound (table, no rules) / baseline: {table_s / scan_s:.2f} (CPU {table_cpu / scan_cpu:.2f})"
        )


if __name__ == "__main__":
    main()
