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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ours(csv: str, out: str) -> None:
    from encord_assets.infos.normalize import normalize

    infos = normalize(Path(csv), "image.csv", "e-mm1_100m", "image")
    infos.rows.sink_parquet(out)
    print(f"{(infos.rejects['kind'] == 'rejected').sum()} {peak_rss_mb():.1f}")


def guide(csv: str, out: str) -> None:
    frame = pl.read_csv(csv)
    frame.write_parquet(out)
    print(f"0 {peak_rss_mb():.1f}")


def measure(which: str, csv: Path, out: Path) -> tuple[float, float, int]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, __file__, "--child", which, str(csv), str(out)], capture_output=True, text=True, check=True)
    rejects, peak = result.stdout.split()
    return time.monotonic() - started, float(peak), int(rejects)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_500_000)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        {"ours": ours, "guide": guide}[args.child[0]](*args.child[1:])
        return
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "image.csv"
        make_csv(csv, args.rows)
        size_mb = csv.stat().st_size / 2**20
        print(f"image.csv: {args.rows:,} rows, {size_mb:.0f} MB")
        print(f"{'approach':<34}{'seconds':>9}{'peak RSS MB':>13}{'peak / file':>13}")
        results = {}
        for which, label in (("guide", "guide: pl.read_csv (eager)"), ("ours", "ours: lazy validate + sink_parquet")):
            seconds, peak, rejects = measure(which, csv, Path(tmp) / f"{which}.parquet")
            results[which] = peak
            print(f"{label:<34}{seconds:>9.1f}{peak:>13.0f}{peak / size_mb:>12.2f}x")
        print(f"rows rejected by ours: {rejects:,}; peak memory ours / guide: {results['ours'] / results['guide']:.2f}")


if __name__ == "__main__":
    main()
