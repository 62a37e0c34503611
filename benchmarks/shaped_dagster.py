"""A whole archive source at 100% through Dagster over a shaped link (default 200 Mbit/s, 20 ms round
trip), against the guide's approach (download the whole archive, then extract) in the same run.

    uv run python benchmarks/shaped_dagster.py [--source coco|flickr30k] [--members 3000]

The infos name every member of the source's archive (a 100% subset). The mirror's archive (and
COCO's single images) hold Pillow-made noise JPEGs of ~140 KB, stored, as image zips are. Ours:
the `infos_image` asset first (not timed), then every non-empty partition of the source's asset
through its `fill_<source>` job in a Dagster instance in a temporary DAGSTER_HOME (the run the UI
and the fill sensor launch), with its checks, in process and one after another (in-process runs
in threads deadlock in Dagster's logging; the run queue would run up to the source's pool limit
at once, each in its own process); `auto` picks how each partition reads.
The guide: one GET of the whole archive to disk, then zipfile extracts the needed members. Prints
seconds, MB sent by the mirror, requests, the read methods picked, and the ratio guide / ours.
"""

import argparse
import os
import random
import shutil
import tempfile
import zipfile
from collections import Counter
from functools import partial
from pathlib import Path

from shaped_archives import SIDE, guide, noise_jpeg, run

from encord_assets.mirror.server import Link, Mirror

SOURCES = {
    # asset, fetcher, file_id of member n, the archive's path on the mirror, its URL path
    "coco": ("image_coco", "coco", lambda n: str(n + 1), "coco/zips/train2017.zip", "/coco/zips/train2017.zip"),
    "flickr30k": (
        "image_flickr30k", "flickr30k", lambda n: str(1_000_000 + n),
        "hf/datasets/nlphuji/flickr30k/flickr30k-images.zip", "/datasets/nlphuji/flickr30k/resolve/main/flickr30k-images.zip",
    ),
}
SOURCE_DATASET = {"coco": "COCO", "flickr30k": "Flickr30k"}


def write_infos(infos: Path, source: str, ids: list[str]) -> None:
    path = infos / "e-mm1_1m" / "infos" / "image.csv"
    path.parent.mkdir(parents=True)
    lines = ["encord_image_id,source_dataset,dataset_license,file_id,file_name,save_folder"]
    lines += [f"{n + 1},{SOURCE_DATASET[source]},CC-BY-4.0,{i},{i}.jpg,e-mm1_1m_only" for n, i in enumerate(ids)]
    path.write_text("\n".join(lines) + "\n")


def realistic(content: Path) -> None:
    """Every JPEG the builders wrote (zip members and single files) becomes a ~140 KB noise JPEG."""
    rng = random.Random(0)
    for archive in content.rglob("*.zip"):
        rebuilt = archive.with_suffix(".tmp")
        with zipfile.ZipFile(archive) as old, zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_STORED) as new:
            for info in old.infolist():
                new.writestr(info.filename, noise_jpeg(rng) if info.filename.endswith(".jpg") else old.read(info))
        rebuilt.replace(archive)
    for image in content.rglob("*.jpg"):
        image.write_bytes(noise_jpeg(rng))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", choices=sorted(SOURCES), default="coco")
    parser.add_argument("--members", type=int, default=3000)
    parser.add_argument("--mbit", type=float, default=200.0)
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    args = parser.parse_args()
    asset, fetcher, file_id, archive_path, archive_url = SOURCES[args.source]
    rate, rtt = args.mbit * 1e6 / 8, args.rtt_ms / 1000
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ids = [file_id(n) for n in range(args.members)]
        write_infos(tmp / "infos", args.source, ids)
        os.environ.update(
            {"ROOT_DATA_PATH": str(tmp / "root"), "ENCORD_INFOS_DIR": str(tmp / "infos"), "DAGSTER_HOME": str(tmp / "home")}
        )
        (tmp / "home").mkdir()
        # imported after the environment names ROOT and the infos
        import dagster as dg

        from encord_assets.demo import normalized_rows
        from encord_assets.materialize import Materializer
        from encord_assets.mirror.build import attach
        from encord_assets.operations.instance import install_instance_yaml, set_pool_limits
        from encord_assets.sources.registry import upstream_emulation

        install_instance_yaml(tmp / "home")

        rows = normalized_rows(tmp / "infos")
        upstream_emulation(fetcher).build(rows, tmp / "content", decoys=0)
        realistic(tmp / "content")
        archive_mb = (tmp / "content" / archive_path).stat().st_size / 1e6
        print(
            f"{args.source}: {args.members:,} noise JPEGs of {SIDE}x{SIDE} in a {archive_mb:.0f} MB archive, all of them needed; "
            f"link {args.mbit:g} Mbit/s, {args.rtt_ms:g} ms round trip\n"
        )
        with Mirror(tmp / "content", link=Link(bandwidth_bytes_per_second=rate, rtt_seconds=rtt)) as mirror:
            os.environ.update(attach(mirror))
            names = [info.filename for info in zipfile.ZipFile(tmp / "content" / archive_path).infolist() if info.filename.endswith(".jpg")]
            out = tmp / "guide"
            out.mkdir()
            guide_result = run(mirror, partial(guide, f"{mirror.url}{archive_url}", names, out))
            shutil.rmtree(out)

            with dg.DagsterInstance.get() as instance:
                set_pool_limits(instance)
                materializer = Materializer(instance)
                materializer.infos("image")
                keys = materializer.source_partitions(asset, "image")

                phases = Counter()

                def partitions() -> str:
                    results = [materializer.run(asset, key) for key in keys]
                    assert all(r.success for r in results), materializer.failures
                    picked = Counter()
                    for result in results:
                        (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset]
                        metadata = event.materialization.metadata
                        picked[metadata["read_method"].value] += 1
                        phases["fetch"] += metadata["fetch_seconds"].value
                        phases["place"] += metadata["place_seconds"].value
                    return ", ".join(f"{method} x{count}" for method, count in picked.items())

                ours = run(mirror, partitions)
            placed = sum(1 for _ in (tmp / "root" / "e-mm1_1m_only" / "image").iterdir())
            assert placed == args.members, placed
        limit = archive_mb * 1e6 / rate + 2 * rtt
        print("| approach | seconds | MB sent | requests | read methods |")
        print("|---|---|---|---|---|")
        print(f"| guide: download whole, extract | {guide_result[0]:.1f} | {guide_result[1] / 1e6:.0f} | {guide_result[2]} | - |")
        print(f"| ours: {len(keys)} partitions through Dagster | {ours[0]:.1f} | {ours[1] / 1e6:.0f} | {ours[2]} | {ours[3]} |")
        print(f"\nof ours: fetching {phases['fetch']:.1f} s, placing (hash, rename, manifest) {phases['place']:.1f} s, the rest is run overhead and checks")
        print(f"ours / guide speed: {guide_result[0] / ours[0]:.2f}x; physical limit {limit:.1f} s (ours / limit {ours[0] / limit:.2f})")


if __name__ == "__main__":
    main()
