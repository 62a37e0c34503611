"""Wall time and bytes of ranged reads over a shaped link (default 200 Mbit/s, 20 ms round trip),
against the guide's approach (download the whole archive, then extract), in the same run.

    uv run python benchmarks/shaped_archives.py [--members 2000] [--mbit 200] [--rtt-ms 20] [--connections 8] [--subsets 0.01,0.1,0.5,1]

The archive holds Pillow-made noise JPEGs of ~140 KB (stored, as image zips are); each subset
is a random sample of members, as hashed partitions need. Ours reads the central directory
with remotezip (ranged reads), then the members with `sources/ranged_reads.py`: coalesced
ranges over parallel connections, one streaming read, and what its chooser picks from the
measured round trip; each approach runs twice and the faster run is shown. The physical
limit is the needed bytes over the bandwidth plus the round trips of one connection's
handshake and first request. Prints a markdown table.
"""

import argparse
import io
import itertools
import random
import shutil
import tempfile
import time
import zipfile
from functools import partial
from pathlib import Path

import remotezip
import requests
from PIL import Image

from encord_assets.mirror.server import Link, Mirror
from encord_assets.sources.ranged_reads import (
    HttpSource,
    Member,
    RangedReads,
    choose,
    fetch_members,
    measure_rtt,
)

SUBSETS = (0.01, 0.10, 0.50, 1.0)
REPEATS = 2
SIDE = 432  # a noise JPEG of 432x432 at quality 85 is ~140 KB, like a COCO image


def noise_jpeg(rng: random.Random) -> bytes:
    image = Image.frombytes("RGB", (SIDE, SIDE), rng.randbytes(SIDE * SIDE * 3))
    data = io.BytesIO()
    image.save(data, "JPEG", quality=85)
    return data.getvalue()


def build_archive(path: Path, members: int) -> None:
    rng = random.Random(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(members):
            zf.writestr(f"train/{i:06d}.jpg", noise_jpeg(rng))


def guide(url: str, names: list[str], out: Path) -> str:
    """Download the whole archive to disk, then extract the needed members."""
    archive = out / "archive.zip"
    with requests.get(url, stream=True, timeout=60) as response, open(archive, "wb") as f:
        response.raise_for_status()
        f.writelines(response.iter_content(1 << 20))
    with zipfile.ZipFile(archive) as zf:
        for name in names:
            with zf.open(name) as member, open(out / Path(name).name, "wb") as target:
                shutil.copyfileobj(member, target, 1 << 20)
    return "guide"


def ours(url: str, names: list[str], out: Path, options: RangedReads, method: str) -> str:
    """The central directory by remotezip, then the members by ranged_reads; returns the method used."""
    source = HttpSource(url, timeout_seconds=options.timeout_seconds)
    with requests.Session() as session:
        infos = {info.filename: info for info in remotezip.RemoteZip(url, initial_buffer_size=64 << 10, session=session).infolist()}
    members = [Member.of(infos[name]) for name in names]
    if method == "chooser":
        method = choose(members, source.size, measure_rtt(source), options).method
    numbers = itertools.count()
    fetched = fetch_members(source, members, source.size, lambda: out / f"{next(numbers)}.part", options, stream=method == "stream")
    assert not fetched.errors and len(fetched.staged) == len(names), fetched.errors
    return method


def run(mirror: Mirror, action) -> tuple[float, int, int, str]:
    """(seconds, bytes the mirror sent, requests, method) of one approach."""
    mirror.reset_stats()
    started = time.monotonic()
    method = action()
    seconds = time.monotonic() - started
    stats = mirror.stats()
    return seconds, stats["bytes_sent"], stats["requests"], method


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--mbit", type=float, default=200.0)
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=8, help="parallel connections of ranged reads")
    parser.add_argument("--subsets", default=",".join(f"{s:g}" for s in SUBSETS), help="fractions of the members, comma-separated")
    args = parser.parse_args()
    rate, rtt = args.mbit * 1e6 / 8, args.rtt_ms / 1000
    connections = args.connections
    options = RangedReads(connections=connections, gap_bytes=int(rate * rtt / connections), link_bytes_per_second=int(rate))
    with tempfile.TemporaryDirectory() as tmp:
        content = Path(tmp) / "content"
        content.mkdir()
        archive = content / "train.zip"
        build_archive(archive, args.members)
        with zipfile.ZipFile(archive) as zf:
            sizes = {info.filename: info.compress_size for info in zf.infolist()}
        archive_mb = archive.stat().st_size / 1e6
        print(f"archive: {args.members:,} noise JPEGs, {archive_mb:.0f} MB; link {args.mbit:g} Mbit/s, {args.rtt_ms:g} ms round trip\n")
        print("| subset | needed MB | limit s | guide s (MB) | ranges s (MB, requests) | stream s (MB) | chooser: pick, s | chooser vs guide | chooser / limit |")
        print("|---|---|---|---|---|---|---|---|---|")
        with Mirror(content, link=Link(bandwidth_bytes_per_second=rate, rtt_seconds=rtt)) as mirror:
            url = f"{mirror.url}/train.zip"
            names_all = sorted(sizes)
            for fraction in (float(f) for f in args.subsets.split(",")):
                names = sorted(random.Random(1).sample(names_all, max(1, round(len(names_all) * fraction))))
                needed = sum(sizes[n] for n in names)
                limit = needed / rate + 2 * rtt
                results = {}
                for method in ("guide", "ranges", "stream", "chooser"):
                    # best of REPEATS: a run is slowed by whatever the busy machine does meanwhile
                    for _ in range(REPEATS):
                        out = Path(tmp) / method
                        out.mkdir()
                        if method == "guide":
                            action = partial(guide, url, names, out)
                        else:
                            action = partial(ours, url, names, out, options, method)
                        result = run(mirror, action)
                        shutil.rmtree(out)
                        results[method] = min(results.get(method, result), result)
                g, r, s, c = (results[m] for m in ("guide", "ranges", "stream", "chooser"))
                print(
                    f"| {fraction:.0%} | {needed / 1e6:.1f} | {limit:.2f} | {g[0]:.2f} ({g[1] / 1e6:.0f}) | {r[0]:.2f} ({r[1] / 1e6:.1f}, {r[2]}) | "
                    f"{s[0]:.2f} ({s[1] / 1e6:.1f}) | {c[3]}, {c[0]:.2f} | {g[0] / c[0]:.1f}x | {c[0] / limit:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
