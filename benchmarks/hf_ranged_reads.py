"""Bytes fetched and wall time: ranged reads (our sources) vs the guide's approach (download
every archive with hf_hub_download, then extract), for 1%, 10% and 100% subsets of each
Hugging Face source, against the same local mirror in the same process.

    uv run python benchmarks/hf_ranged_reads.py
"""

import os
import sys
import tempfile
import time
import zipfile
from functools import partial
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow.parquet as pq

from encord_assets.ledger import FetchLedger
from encord_assets.mirror import flickr30k, hf_hub, imagenet, vidgen
from encord_assets.mirror.media import seed_of
from encord_assets.mirror.server import Mirror
from encord_assets.sources.flickr30k import Flickr30kZip
from encord_assets.sources.hf import stem_of
from encord_assets.sources.imagenet import ImageNetParquet
from encord_assets.sources.vidgen import VidGenZips

SUBSETS = (0.01, 0.10, 1.0)
IMAGENET_ROWS, FLICKR_ROWS, VIDGEN_ROWS = 2000, 2000, 300


def subset(ids: list[str], fraction: float) -> list[str]:
    return sorted(ids, key=lambda i: seed_of(f"subset:{i}"))[: max(1, round(len(ids) * fraction))]


def rows_of(ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"file_id": ids, "target": [f"bench/{i}" for i in ids]})


def ranged(source, ids: list[str], workdir: Path) -> int:
    """Our fetcher, index included; returns the bytes placed (staged)."""
    context = dg.build_asset_context()
    log = FetchLedger(workdir / "staging")
    if hasattr(source, "build_index"):
        table, _ = source.build_index(context, source.index_revision())
        source.fetch(context, rows_of(ids), log, index=table.lazy())
    else:
        source.fetch(context, rows_of(ids), log)
    results = log.results()
    assert set(results["outcome"]) == {"staged"}, results["outcome"].value_counts()
    return sum(Path(p).stat().st_size for p in results["staged_path"])


def guide(mirror: Mirror, repo: str, files: list[str], ids: list[str], workdir: Path) -> int:
    """Download every file, then extract the wanted images/clips; returns the bytes written."""
    from huggingface_hub import hf_hub_download

    wanted, placed = set(ids), 0
    out = workdir / "guide"
    out.mkdir(parents=True, exist_ok=True)
    for name in files:
        local = hf_hub_download(repo, name, repo_type="dataset", endpoint=mirror.url, token=False, cache_dir=workdir / "cache")
        if name.endswith(".parquet"):
            for image in pq.read_table(local, columns=["image"]).column("image").to_pylist():
                if stem_of(image["path"]) in wanted:
                    placed += (out / image["path"]).write_bytes(image["bytes"])
        else:
            with zipfile.ZipFile(local) as zf:
                for info in zf.infolist():
                    if not info.is_dir() and stem_of(info.filename) in wanted:
                        placed += (out / Path(info.filename).name).write_bytes(zf.read(info))
    return placed


def measure(mirror: Mirror, action) -> tuple[int, int, float]:
    mirror.reset_stats()
    started = time.perf_counter()
    placed = action()
    return mirror.stats()["bytes_sent"], placed, time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        os.environ["HF_HOME"] = str(base / "hf_home")
        content = base / "content"
        ids = {
            "ImageNet": [f"n{1_440_764 + n % 50:08d}_{n}" for n in range(IMAGENET_ROWS)],
            "Flickr30k": [str(1_000_000 + n) for n in range(FLICKR_ROWS)],
            "VidGen-1M": [f"clip{n:07d}-Scene-{n % 300:04d}" for n in range(VIDGEN_ROWS)],
        }
        print("building the mirror...", file=sys.stderr)
        imagenet.build(pl.DataFrame({"file_id": ids["ImageNet"]}), content, decoys=0, files=4, row_group_size=100)
        flickr30k.build(pl.DataFrame({"file_id": ids["Flickr30k"]}), content, decoys=0)
        vidgen.build(pl.DataFrame({"file_id": ids["VidGen-1M"]}), content, decoys=0, zips=3)
        lines = []
        with Mirror(content) as mirror:
            hf_hub.routes(mirror)
            for repo in (imagenet.REPO, flickr30k.REPO, vidgen.REPO):
                hf_hub.repo_sha(content, repo)  # the mirror hashes its files once, before timing
            sources = {
                "ImageNet": (ImageNetParquet(endpoint=mirror.url), imagenet.REPO),
                "Flickr30k": (Flickr30kZip(endpoint=mirror.url), flickr30k.REPO),
                "VidGen-1M": (VidGenZips(endpoint=mirror.url), vidgen.REPO),
            }
            with tempfile.TemporaryDirectory(dir=base) as work:
                ranged(sources["ImageNet"][0], ids["ImageNet"][:1], Path(work))  # warm-up: imports, first connections
            for name, (source, repo) in sources.items():
                files = [p for p, _ in source.list_files("main", getattr(source, "files", None) or source.archive)]
                total = sum((hf_hub.repo_dir(content, repo) / f).stat().st_size for f in files)
                for fraction in SUBSETS:
                    chosen = subset(ids[name], fraction)
                    with tempfile.TemporaryDirectory(dir=base) as work:
                        ours = measure(mirror, partial(ranged, source, chosen, Path(work)))
                    with tempfile.TemporaryDirectory(dir=base) as work:
                        theirs = measure(mirror, partial(guide, mirror, repo, files, chosen, Path(work)))
                    assert ours[1] == theirs[1], (name, fraction, ours, theirs)
                    needed = ours[1]
                    lines.append(
                        f"| {name} | {fraction:.0%} | {len(chosen)} | {needed / 1e6:.2f} | {total / 1e6:.1f} "
                        f"| {ours[0] / needed:.2f} | {ours[2]:.2f} | {theirs[0] / needed:.2f} | {theirs[2]:.2f} |"
                    )
                    print(lines[-1], file=sys.stderr)
    print("| source | subset | rows | MB needed | MB upstream | ranged: fetched/needed | ranged: s | guide: fetched/needed | guide: s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
