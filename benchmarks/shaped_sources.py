"""Every archive source through its real fetcher, over a shaped link (default 200 Mbit/s, 20 ms
round trip), against the guide's approach (download every file whole, then extract), in one run.

    uv run python benchmarks/shaped_sources.py [--mbit 200] [--rtt-ms 20] [--scale 1.0] [--sources flickr30k,vidgen,imagenet,coco,openimages]
        [--connections N]

Content is built by the mirror modules at real proportions, hundreds of MB per source: Flickr30k
one deflated zip of 2,000 noise JPEGs of ~140 KB; VidGen-1M 4 zips of 24 random clips of 1-5 MB;
ImageNet 6 parquet files of 400 noise JPEGs of ~110 KB in 100-image (~11 MB) row groups, as the
upstream writes them; COCO train2017.zip of 2,000 noise JPEGs of ~140 KB, each also served as its
own file; Open Images one mask zip of 40,000 members of 2-6 KB (random bytes: the fetcher copies
masks, it does not decode them). A subset is a random sample of the source's ids (hashed partitions are random). Ours is
the source's fetcher called as its asset calls it (a PartitionWork and a FetchLedger; the index of
ImageNet and VidGen-1M is built in the timed part), with its default settings and `auto` method.
The guide downloads every file of the source (hf_hub_download, or one GET of the COCO zip), then
extracts the subset. The limit is the needed bytes over the bandwidth plus two round trips (a
connection's handshake and first request). MB fetched are what the mirror sent (API calls and
central directories included). The mirror runs in a process of its own, as a real upstream runs
on another machine: its work does not compete with the fetchers' for this interpreter. Open Images
is timed twice per subset on one ROOT: the first partition of the zip (its central directory read
and kept under ROOT), then a later one (the directory found there). `--connections` sets every
fetcher's connections (default: each one's own). `--scale 0.1` builds a tenth of everything (for development).
"""

import argparse
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
import zipfile
from functools import partial
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
import requests

from encord_assets.ledger import FetchLedger
from encord_assets.mirror import coco, flickr30k, hf_hub, imagenet, vidgen
from encord_assets.mirror import openimages as openimages_mirror
from encord_assets.mirror.media import jpeg_bytes, seed_of
from encord_assets.mirror.server import Link, Mirror
from encord_assets.sources.coco import CocoImages
from encord_assets.sources.flickr30k import Flickr30kZip
from encord_assets.sources.hf import stem_of
from encord_assets.sources.imagenet import ImageNetParquet
from encord_assets.sources.openimages import OpenImages, mask_zip
from encord_assets.sources.registry import source_by_name
from encord_assets.sources.vidgen import VidGenZips
from encord_assets.sources.work import PartitionWork
from encord_assets.store import DatasetStore

SUBSETS = (0.01, 0.10, 0.50, 1.0)
ROWS = {"flickr30k": 2000, "vidgen": 96, "imagenet": 2400, "coco": 2000, "openimages": 40000}
MASKS = mask_zip("train", "0")
VIDGEN_ZIPS, IMAGENET_FILES, IMAGENET_ROW_GROUP = 4, 6, 100


def clip_bytes(file_id: str) -> bytes:
    """Incompressible bytes of a clip's size (1-5 MB): the fetcher copies members, it does not decode them."""
    rng = random.Random(seed_of(f"clip:{file_id}"))
    return rng.randbytes(rng.randrange(1 << 20, 5 << 20))


def mask_member(name: str) -> bytes:
    rng = random.Random(seed_of(f"mask:{name}"))
    return rng.randbytes(rng.randrange(2 << 10, 6 << 10))


def build(name: str, ids: list[str], content: Path) -> None:
    frame = pl.DataFrame({"file_id": ids})
    if name == "flickr30k":
        flickr30k.build(frame, content, decoys=0, image=lambda i: jpeg_bytes(f"flickr30k:{i}", 400, 400))
    elif name == "vidgen":
        vidgen.build(frame, content, decoys=0, zips=VIDGEN_ZIPS, clip=clip_bytes)
    elif name == "imagenet":
        imagenet.build(
            frame, content, decoys=0, files=IMAGENET_FILES, row_group_size=IMAGENET_ROW_GROUP, image=lambda i: jpeg_bytes(f"imagenet:{i}", 352, 352)
        )
    elif name == "coco":
        coco.build(frame, content, decoys=0, image=lambda i: jpeg_bytes(f"coco:{i}", 400, 400))
    else:
        path = content / openimages_mirror.PREFIX / "annotations" / MASKS
        openimages_mirror.write_mask_zip(path, {i: mask_member(i) for i in ids}, decoys=0, first_char="0")


def ids_of(name: str, count: int) -> list[str]:
    if name == "imagenet":
        return [f"n{1_440_764 + n % 50:08d}_{n}" for n in range(count)]
    if name == "vidgen":
        return [f"clip{n:07d}-Scene-{n % 300:04d}" for n in range(count)]
    if name == "openimages":
        return [f"0{n:015x}_m0{n % 600:04x}_{seed_of(str(n)):016x}.png" for n in range(count)]
    return [str(1_000_000 + n) for n in range(count)]


def serve(content: Path, link: Link, urls, stop) -> None:
    """The mirror, with the Hub's routes and every repository hashed before any timing, until `stop` is set."""
    with Mirror(content, link=link) as mirror:
        hf_hub.routes(mirror)
        for repo in REPO.values():
            if hf_hub.repo_dir(content, repo).is_dir():
                hf_hub.repo_sha(content, repo)
        urls.put(mirror.url)
        stop.wait()


class MirrorProcess:
    """A mirror served by another process, read and reset through its `/_mirror/` endpoints."""

    def __init__(self, content: Path, link: Link):
        context = multiprocessing.get_context("spawn")
        self.urls, self.stop = context.Queue(), context.Event()
        self.process = context.Process(target=serve, args=(content, link, self.urls, self.stop))

    def __enter__(self) -> "MirrorProcess":
        self.process.start()
        self.url = self.urls.get(timeout=600)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()

    def stats(self) -> dict:
        stats = requests.get(f"{self.url}/_mirror/stats", timeout=30).json()
        # the control answers' own bytes are not upstream traffic
        stats["bytes_sent"] -= stats["by_prefix"].get("/_mirror", {}).get("bytes", 0)
        return stats

    def reset_stats(self) -> None:
        requests.post(f"{self.url}/_mirror/reset", timeout=30).raise_for_status()


def fetcher(name: str, mirror: MirrorProcess, **settings):
    """The source's fetcher at its defaults, but for `settings` (`--connections`)."""
    return {
        "flickr30k": lambda: Flickr30kZip(endpoint=mirror.url, **settings),
        "vidgen": lambda: VidGenZips(endpoint=mirror.url, **settings),
        "imagenet": lambda: ImageNetParquet(endpoint=mirror.url, **settings),
        "coco": lambda: CocoImages(base_url=f"{mirror.url}/{coco.PREFIX}", **settings),
        "openimages": lambda: OpenImages(annotations_url=f"{mirror.url}/{openimages_mirror.PREFIX}/annotations", **settings),
    }[name]()


ASSET = {"flickr30k": "image_flickr30k", "vidgen": "video_vidgen1m", "imagenet": "image_imagenet", "coco": "image_coco", "openimages": "image_openimagesv6"}
REPO = {"flickr30k": flickr30k.REPO, "vidgen": vidgen.REPO, "imagenet": imagenet.REPO}


CONTEXT = dg.build_asset_context()  # the asset's context: Dagster makes it before the fetch starts


def ours(name: str, mirror: MirrorProcess, ids: list[str], settings: dict, root: Path | None, workdir: Path) -> tuple[list[Path], str]:
    """The fetcher as the asset calls it, index included; (the staged files, read method). `root`: a
    ROOT an earlier partition used (its cached central directories), else a fresh one."""
    source, context = fetcher(name, mirror, **settings), CONTEXT
    ledger = FetchLedger(workdir / "staging")
    if name == "openimages":  # a partition's mask rows, as openimages_assets plans them
        rows = pl.DataFrame(
            {"kind": "mask", "target": [f"bench/{i}" for i in ids], "archive": MASKS, "member": ids, "url": None, "content": None},
            schema_overrides={"url": pl.String, "content": pl.String},
        ).with_columns(copy_from=pl.lit([], dtype=pl.List(pl.String)))
    else:
        rows = pl.DataFrame({"file_id": ids, "target": [f"bench/{i}" for i in ids]})
    work = PartitionWork(source_by_name(ASSET[name]), "bench", rows, ledger, DatasetStore(root=str(root or workdir / "root")), context.log)
    if hasattr(source, "build_index"):
        table, _ = source.build_index(context, source.index_revision())
        source.fetch(work, index=table.lazy())
    else:
        source.fetch(work)
    results = ledger.results()
    assert set(results["outcome"]) == {"staged"}, results["outcome"].value_counts()
    method = ledger.choice_metadata().get("read_method", "row groups")
    return [Path(p) for p in results["staged_path"]], method


def guide(name: str, mirror: MirrorProcess, files: list[str], ids: list[str], workdir: Path) -> tuple[int, str]:
    """Download every file whole, then extract the wanted members; (bytes written, "guide")."""
    from huggingface_hub import hf_hub_download

    # COCO members are named by the zero-padded id
    key = {"coco": lambda member: str(int(stem_of(member))), "openimages": lambda member: member}.get(name, stem_of)
    wanted, placed = set(ids), 0
    out = workdir / "guide"
    out.mkdir(parents=True, exist_ok=True)
    for file in files:
        if name in ("coco", "openimages"):
            local = workdir / "archive.zip"
            with requests.get(f"{mirror.url}/{file}", stream=True, timeout=60) as response, open(local, "wb") as f:
                response.raise_for_status()
                f.writelines(response.iter_content(1 << 20))
        else:
            local = hf_hub_download(REPO[name], file, repo_type="dataset", endpoint=mirror.url, token=False, cache_dir=workdir / "cache")
        if file.endswith(".parquet"):
            for image in pq.read_table(local, columns=["image"]).column("image").to_pylist():
                if key(image["path"]) in wanted:
                    placed += (out / image["path"]).write_bytes(image["bytes"])
            continue
        with zipfile.ZipFile(local) as zf:
            for info in zf.infolist():
                if not info.is_dir() and key(info.filename) in wanted:
                    with zf.open(info) as member, open(out / Path(info.filename).name, "wb") as target:
                        shutil.copyfileobj(member, target, 1 << 20)
                    placed += info.file_size
    return placed, "guide"


def run(mirror: MirrorProcess, action, base: Path) -> tuple[float, int, int, int, str]:
    """(seconds, bytes the mirror sent, requests, bytes placed, method) of one approach, in a fresh folder."""
    with tempfile.TemporaryDirectory(dir=base) as work:
        mirror.reset_stats()
        started = time.monotonic()
        placed, method = action(Path(work))
        seconds = time.monotonic() - started
        if isinstance(placed, list):  # staged files, measured once the clock has stopped
            placed = sum(path.stat().st_size for path in placed)
    stats = mirror.stats()
    return seconds, stats["bytes_sent"], stats["requests"], placed, method


def row_group_bytes(content: Path, chosen: list[str]) -> tuple[int, int]:
    """(bytes of the row groups holding a chosen image, bytes of all row groups) of the parquet files:
    what reading whole row groups must fetch, against the whole."""
    wanted, touched, total = set(chosen), 0, 0
    for path in sorted((hf_hub.repo_dir(content, imagenet.REPO) / "data").glob("train-*.parquet")):
        parquet = pq.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            meta = parquet.metadata.row_group(group)
            size = sum(meta.column(c).total_compressed_size for c in range(meta.num_columns))
            paths = parquet.read_row_group(group, columns=["image.path"]).column("image").combine_chunks().field("path")
            total += size
            touched += size if any(stem_of(p) in wanted for p in paths.to_pylist()) else 0
    return touched, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mbit", type=float, default=200.0)
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--sources", default=",".join(ROWS))
    parser.add_argument("--connections", type=int, help="parallel connections of every fetcher (default: each one's own)")
    args = parser.parse_args()
    settings = {} if args.connections is None else {"connections": args.connections}
    rate, rtt = args.mbit * 1e6 / 8, args.rtt_ms / 1000
    names = args.sources.split(",")
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        os.environ["HF_HOME"] = str(base / "hf_home")
        content = base / "content"
        ids = {name: ids_of(name, max(4, round(ROWS[name] * args.scale))) for name in names}
        started = time.monotonic()
        for name in names:
            build(name, ids[name], content)
        print(f"built the mirror's content in {time.monotonic() - started:.0f} s", file=sys.stderr)
        print(f"link {args.mbit:g} Mbit/s, {args.rtt_ms:g} ms round trip; load average {os.getloadavg()[0]:.1f} at the start\n")
        print("| source | subset | rows | needed MB | limit s | guide s (MB) | ours s (MB, requests) | picked | ours vs guide | ours / limit | fetched / needed |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        notes = []
        with MirrorProcess(content, Link(bandwidth_bytes_per_second=rate, rtt_seconds=rtt)) as mirror:
            for name in names:
                if name == "coco":
                    files = [f"{coco.PREFIX}/zips/train2017.zip"]
                elif name == "openimages":
                    files = [f"{openimages_mirror.PREFIX}/annotations/{MASKS}"]
                else:
                    source = fetcher(name, mirror)
                    files = [p for p, _ in source.list_files("main", getattr(source, "files", None) or source.archive)]
                run(mirror, partial(ours, name, mirror, ids[name][:1], settings, None), base)  # warm-up: imports, first connections
                for fraction in SUBSETS:
                    chosen = sorted(random.Random(1).sample(ids[name], max(1, round(len(ids[name]) * fraction))))
                    # Open Images: the first partition of a zip reads its central directory into ROOT; a later
                    # one (another class of the split) finds it there: the same members read again show that
                    root = base / f"root-{name}-{fraction}"
                    partitions = [("", root), (" (later partition)", root)] if name == "openimages" else [("", None)]
                    theirs = run(mirror, partial(guide, name, mirror, files, chosen), base)
                    for label, kept in partitions:
                        mine = run(mirror, partial(ours, name, mirror, chosen, settings, kept), base)
                        assert mine[3] == theirs[3], (name, fraction, mine, theirs)
                        needed = mine[3]
                        limit = needed / rate + 2 * rtt
                        print(
                            f"| {name}{label} | {fraction:.0%} | {len(chosen)} | {needed / 1e6:.1f} | {limit:.2f} | {theirs[0]:.2f} ({theirs[1] / 1e6:.0f}) | "
                            f"{mine[0]:.2f} ({mine[1] / 1e6:.1f}, {mine[2]}) | {mine[4]} | {theirs[0] / mine[0]:.1f}x | {mine[0] / limit:.2f} | "
                            f"{mine[1] / needed:.2f} |",
                            flush=True,
                        )
                    if name == "imagenet":
                        touched, total = row_group_bytes(content, chosen)
                        floor = touched / rate + 2 * rtt
                        notes.append(
                            f"imagenet {fraction:.0%}: the row groups holding the subset are {touched / total:.0%} of the files' bytes "
                            f"({touched / 1e6:.0f} MB, {floor:.2f} s at the link's rate); ours / that floor {mine[0] / floor:.2f}"
                        )
        print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
