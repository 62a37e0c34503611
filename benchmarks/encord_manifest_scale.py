"""Peak memory and time of Encord import manifests for a large synthetic release, against a hand-written
script's approach (read the files table whole, build the whole JSON in memory, dump it), each in its own process.

    uv run python benchmarks/encord_manifest_scale.py [--rows 1000000] [--max-items 500000]

The release has `rows` file rows (images, videos, audio clips of which half are also a video row's file,
point clouds) with captions, and a triplets table; the manifests must split at the item limit.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
from infos_scale import sample_anonymous_peak

URL_BASE = "https://bench-bucket.s3.eu-west-1.amazonaws.com/e-mm1"
NAME = "big"


def make_release(root: Path, rows: int) -> None:
    from encord_assets.layout.paths import bookkeeping_key
    from encord_assets.products.releases import FILES_COLUMNS, release_key
    from encord_assets.store import DatasetStore

    store = DatasetStore(root=str(root))
    n = pl.int_range(0, rows, eager=True)
    kind = n % 10
    modality = pl.when(kind < 4).then(pl.lit("image")).when(kind < 6).then(pl.lit("video")).when(kind < 8).then(pl.lit("audio")).otherwise(pl.lit("points"))
    # every other audio row's clip is the file of the video row before it
    twin = (kind == 6) | (kind == 7)
    file_n = pl.when(twin & (n % 20 < 10)).then(n - 2).otherwise(n)
    extension = pl.when(modality == "image").then(pl.lit("jpg")).when(modality == "points").then(pl.lit("npy")).otherwise(pl.lit("mp4"))
    folder = pl.when(modality == "image").then(pl.lit("image")).when(modality == "points").then(pl.lit("points")).otherwise(pl.lit("video"))
    file_name = pl.format("clip {}, part.{}", file_n, extension)
    files = pl.select(
        split=pl.when(n % 2 == 0).then(pl.lit("e-mm1_100m")).otherwise(pl.lit("e-mm1_1m")),
        modality=modality,
        source=pl.lit("image_coco"),
        source_dataset=pl.lit("COCO"),
        dataset_license=pl.lit("CC-BY-4.0"),
        encord_id=n,
        save_folder=pl.lit("shared"),
        file_name=file_name,
        target=pl.format("shared/{}/{}", folder, file_name),
        bytes=pl.lit(100_000, pl.Int64),
        sha256=pl.lit("0" * 64),
        encord_text_id=pl.when(n % 3 == 0).then(n + 10_000_000),
        caption=pl.when(n % 3 == 0).then(pl.format("A caption of about sixty characters describing item number {}", n)),
        labels=pl.lit([], dtype=pl.List(pl.String)),
    ).select(FILES_COLUMNS)
    store.write(release_key(NAME, "files.parquet"), files.write_parquet)
    t = pl.int_range(0, rows // 10, eager=True)
    triplets = pl.select(
        encord_text_id=t + 20_000_000,
        paired_modality=pl.lit("image"), encord_paired_id=t * 10, paired_present=pl.lit(True),
        annotated_modality=pl.lit("video"), encord_annotated_id=t * 10 + 4, annotated_present=pl.lit(True),
    )
    store.write(release_key(NAME, "triplets.parquet"), triplets.write_parquet)
    info = {"name": NAME, "created_at": "2026-12-01T00:00:00+00:00"}
    store.write_bytes(release_key(NAME, "release.json"), json.dumps(info).encode())
    store.write_bytes(bookkeeping_key("releases", "latest.json"), json.dumps(info).encode())


def ours(root: str, out: str, max_items: str) -> None:
    from encord_assets.products.encord.build import manifests
    from encord_assets.products.encord.urls import EncordUrls
    from encord_assets.store import DatasetStore

    peak: dict = {}
    sample_anonymous_peak(peak)
    report = manifests(DatasetStore(root=root), NAME, None, EncordUrls(object_url_base=URL_BASE), Path(out), ("json",), int(max_items))
    time.sleep(0.02)
    print(json.dumps({"peak": peak["anon"], "files": report["files"], "entries": report["entries"], "left_out": report["left_out_rows"]}))


def by_hand(root: str, out: str, max_items: str) -> None:
    """What a hand-written script does: every file row in memory, one dict per file, one json.dump."""
    from urllib.parse import quote

    peak: dict = {}
    sample_anonymous_peak(peak)
    files = pl.read_parquet(Path(root) / "_encord_assets" / "releases" / NAME / "files.parquet").filter(pl.col("modality") != "points")
    manifest: dict = {"videos": [], "audio": [], "images": [], "skip_duplicate_urls": True}
    seen = set()
    key = {"video": "videos", "audio": "audio", "image": "images"}
    for row in files.iter_rows(named=True):
        if row["target"] in seen:
            continue
        seen.add(row["target"])
        metadata = {k: row[k] for k in ("split", "source_dataset", "dataset_license", "encord_id", "caption") if row[k] is not None}
        manifest[key[row["modality"]]].append({"objectUrl": f"{URL_BASE}/{quote(row['target'])}", "title": row["file_name"], "clientMetadata": metadata})
    with open(Path(out) / "manifest.json", "w") as f:
        json.dump(manifest, f)
    time.sleep(0.02)
    print(json.dumps({"peak": peak["anon"], "files": ["manifest.json"], "entries": {k: len(v) for k, v in manifest.items() if k != "skip_duplicate_urls"}}))


def measure(which: str, root: Path, out: Path, max_items: int) -> tuple[float, dict]:
    out.mkdir()
    started = time.monotonic()
    result = subprocess.run([sys.executable, __file__, "--child", which, str(root), str(out), str(max_items)], capture_output=True, text=True, check=True)
    return time.monotonic() - started, json.loads(result.stdout.splitlines()[-1])


def items_per_file(out: Path, names: list[str]) -> list[int]:
    return [sum(len(v) for k, v in json.loads((out / name).read_text()).items() if k != "skip_duplicate_urls") for name in names]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--max-items", type=int, default=500_000)
    parser.add_argument("--child", nargs=4)
    args = parser.parse_args()
    if args.child:
        {"ours": ours, "by_hand": by_hand}[args.child[0]](*args.child[1:])
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        make_release(root, args.rows)
        print(f"release {NAME!r}: {args.rows:,} file rows")
        print(f"{'approach':<44}{'seconds':>8}{'peak anon MB':>14}  files (items each)")
        results = {}
        for which, label in (("by_hand", "by hand: table in memory, one json.dump"), ("ours", "ours: streamed, split at the item limit")):
            out = Path(tmp) / which
            seconds, result = measure(which, root, out, args.max_items)
            results[which] = result
            counts = items_per_file(out, result["files"])
            print(f"{label:<44}{seconds:>8.1f}{result['peak']:>14.0f}  {len(counts)} ({', '.join(f'{c:,}' for c in counts)})")
        print(f"entries ours: {results['ours']['entries']}; left out: {results['ours']['left_out']}")
        print(f"anonymous peak ours / by hand: {results['ours']['peak'] / results['by_hand']['peak']:.2f}")


if __name__ == "__main__":
    main()
