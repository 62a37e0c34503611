"""One Open Images class's images and masks: our assets vs the seed procedure, bytes and wall time,
against the same local mirror in the same run.

The seed procedure: download the class list and the segmentation CSV, all sixteen
`train-masks-<c>.zip` files, extract them, filter the CSV to the class, write the id list, then
fetch each image with one GET, as the official downloader.py does (its default 5 workers).
Ours: the Dagster assets (class list, annotation table, one (class, split) partition), each a run.

    uv run python benchmarks/openimages_class.py [--images 160] [--decoys 600]
"""

import argparse
import io
import os
import random
import shutil
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import polars as pl
import requests
from PIL import Image

from encord_assets.materialize import Materializer
from encord_assets.mirror import openimages as oi_mirror
from encord_assets.mirror.server import Mirror
from encord_assets.operations.instance import install_instance_yaml
from encord_assets.sources.openimages import annotation_file, mask_zip


def realistic_decoy() -> bytes:
    """An ~8 KB PNG: the size of a real mask member (noise does not compress)."""
    out = io.BytesIO()
    Image.frombytes("L", (90, 90), random.Random(0).randbytes(8100)).save(out, format="PNG")
    return out.getvalue()


def write_csvs(folder: Path, images: int) -> None:
    """One class (Handgun) with `images` train images spread over the sixteen prefixes, a mask each."""
    folder.mkdir(parents=True)
    shutil.copy(oi_mirror.SAMPLE_DIR / "class-descriptions-boxable.csv", folder)
    masks = ["MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks"]
    for n in range(images):
        image_id = f"{n % 16:x}{n:015x}"
        masks.append(f"{image_id}_m0gxl3_{n:08x}.png,{image_id},/m/0gxl3,{n:08x},0.2,0.6,0.2,0.7,0.8,")
    (folder / Path(annotation_file("train", "masks")).name).write_text("\n".join(masks) + "\n")


def seed_procedure(base: str, images_url: str, workdir: Path) -> int:
    """The seed procedure; returns the files it ends with (images + masks of the class)."""
    session = requests.Session()
    csv_dir = workdir / "csv"
    csv_dir.mkdir(parents=True)

    def get(url: str, path: Path) -> None:
        with session.get(url, stream=True) as response:
            response.raise_for_status()
            with open(path, "wb") as out:
                shutil.copyfileobj(response.raw, out, 1 << 20)

    get(f"{base}/v5/class-descriptions-boxable.csv", csv_dir / "class-descriptions-boxable.csv")
    segmentation = csv_dir / "train-annotations-object-segmentation.csv"
    get(f"{base}/{annotation_file('train', 'masks')}", segmentation)
    mid = pl.read_csv(csv_dir / "class-descriptions-boxable.csv", has_header=False).filter(pl.col("column_1") == "Handgun")["column_0"][0]
    masks_dir = workdir / "all_masks"
    for c in "0123456789abcdef":
        archive = workdir / f"train-masks-{c}.zip"
        get(f"{base}/{mask_zip('train', c)}", archive)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(masks_dir)
    rows = pl.read_csv(segmentation).filter(pl.col("LabelName") == mid)
    rows.write_csv(workdir / "m0gxl3_annotations.csv")
    ids = rows["ImageID"].unique().to_list()
    (workdir / "downloader_IDs_for_m0gxl3_train.txt").write_text("".join(f"train/{i}\n" for i in ids))
    class_masks = workdir / "masks"
    class_masks.mkdir()
    for name in rows["MaskPath"]:
        shutil.copy(masks_dir / name, class_masks / name)
    images_dir = workdir / "images"
    images_dir.mkdir()
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda i: get(f"{images_url}/train/{i}.jpg", images_dir / f"{i}.jpg"), ids))
    return len(ids) + rows.height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=160, help="images (and masks) of the class")
    parser.add_argument("--decoys", type=int, default=600, help="other classes' masks in each of the 16 zips")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_csvs(tmp / "csvs", args.images)
        oi_mirror.build(tmp / "csvs", tmp / "mirror", decoys=args.decoys, decoy=realistic_decoy())
        zips = sum(p.stat().st_size for p in (tmp / "mirror").rglob("train-masks-*.zip"))
        with Mirror(tmp / "mirror") as mirror:
            base, images_url = oi_mirror.env(mirror).values()

            started = time.monotonic()
            files = seed_procedure(base, images_url, tmp / "seed")
            seed_seconds, seed_bytes = time.monotonic() - started, mirror.stats()["bytes_sent"]

            mirror.reset_stats()
            home = tmp / "dagster_home"
            install_instance_yaml(home)
            os.environ.update(
                {
                    "ROOT_DATA_PATH": str(tmp / "root"), "DAGSTER_HOME": str(home), "OPENIMAGES_CLASSES": "Handgun",
                    "OPENIMAGES_SPLITS": "train", "OPENIMAGES_LABEL_TYPES": "images,masks",
                    "OPENIMAGES_ANNOTATIONS_URL": base, "OPENIMAGES_IMAGES_URL": images_url,
                }
            )  # fmt: skip
            with dg.DagsterInstance.get() as instance:
                started = time.monotonic()
                materializer = Materializer(instance)
                materializer.openimages()
                ours_seconds, ours_bytes = time.monotonic() - started, mirror.stats()["bytes_sent"]
                event = instance.get_latest_materialization_event(dg.AssetKey("image_openimagesv6"))
                fetch_seconds = event.asset_materialization.metadata["fetch_seconds"].value
            assert not materializer.failures, materializer.failures
            placed = sum(1 for p in (tmp / "root" / "OID_V6").rglob("*") if p.suffix in (".jpg", ".png"))
            assert placed == files, (placed, files)
        print(f"one class, {args.images} images and masks; 16 zips of {args.decoys} other masks each ({zips / 1e6:.1f} MB in all)")
        print(f"{'method':<40} {'seconds':>8} {'MB fetched':>11}")
        print(f"{'seed: 16 zips + extract + GET per image':<40} {seed_seconds:8.1f} {seed_bytes / 1e6:11.2f}")
        print(f"{'ours: assets through Dagster (3 runs)':<40} {ours_seconds:8.1f} {ours_bytes / 1e6:11.2f}")
        print(f"{'  of which the partition fetch':<40} {fetch_seconds:8.1f}")
        print(f"{'ratio ours / seed':<40} {ours_seconds / seed_seconds:8.2f}x {ours_bytes / seed_bytes:10.3f}x")
        print(f"{'ratio partition fetch / seed':<40} {fetch_seconds / seed_seconds:8.2f}x")


if __name__ == "__main__":
    main()
