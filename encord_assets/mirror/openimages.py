"""Open Images V6 on the mirror, built from official-format CSV files in a folder, named as
upstream names them (any subset: a split or label type without its file is absent upstream too):

- /openimages/annotations/v5/... and v6/... : the CSVs as given
- /openimages/annotations/v5/<split>-masks/<split>-masks-<c>.zip : a real PNG mask for every
  MaskPath of the split's segmentation CSV, among unneeded members (ZIP64 past 65,535 members)
- /openimages/images/<split>/<ImageID>.jpg : a real JPEG for every image any CSV names
"""

import filecmp
import io
import random
import zipfile
from pathlib import Path

import polars as pl
from PIL import Image, ImageDraw

from encord_assets.mirror.media import FIXED_DATE, jpeg_bytes, seed_of, write_file
from encord_assets.mirror.server import Mirror
from encord_assets.sources.openimages import CLASS_DESCRIPTIONS, SEGMENTATION_CLASSES, SPLITS, annotation_file, mask_zip

PREFIX = "openimages"
SAMPLE_DIR = Path(__file__).parent / "openimages_sample"
IMAGE_SIZE = (96, 64)
MASK_SIZE = (160, 106)  # masks are larger than the (rescaled) images upstream too
SAMPLE_CLASSES = "Handgun,Cat"
HEX = "0123456789abcdef"


def upstream_files() -> list[str]:
    files = [CLASS_DESCRIPTIONS, SEGMENTATION_CLASSES]
    return files + [annotation_file(split, kind) for split in SPLITS for kind in ("boxes", "masks", "labels")]


def image_bytes(split: str, image_id: str) -> bytes:
    return jpeg_bytes(f"openimages:{split}:{image_id}", *IMAGE_SIZE)


def mask_bytes(mask_path: str, box: tuple[float, float, float, float] | None) -> bytes:
    """A binary PNG mask (mode L, 0/255) filling its box, at mask resolution."""
    width, height = MASK_SIZE
    image = Image.new("L", MASK_SIZE, 0)
    x0, x1, y0, y1 = box if box and None not in box else (0.25, 0.75, 0.25, 0.75)
    left, top, right, bottom = int(x0 * (width - 1)), int(y0 * (height - 1)), int(x1 * (width - 1)), int(y1 * (height - 1))
    ImageDraw.Draw(image).rectangle([left, top, right, bottom], fill=255)
    # a few holes inside the box make every mask's bytes its own
    rng = random.Random(seed_of(mask_path))
    for _ in range(8):
        image.putpixel((rng.randint(left, right), rng.randint(top, bottom)), 0)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


DECOY = mask_bytes("decoy", (0.1, 0.2, 0.1, 0.2))


def write_mask_zip(path: Path, needed: dict[str, bytes], decoys: int, first_char: str, decoy: bytes = DECOY) -> None:
    """Needed members scattered among `decoys` unneeded ones (each `decoy`), all stored (PNGs do not deflate)."""
    names = {f"{first_char}{n:015x}_m0decoy_{n:016x}.png": decoy for n in range(decoys)}
    members = needed | {name: data for name, data in names.items() if name not in needed}
    order = sorted(members, key=lambda name: seed_of(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".building")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:  # zipfile writes ZIP64 records past 65,535 members
        for name in order:
            zf.writestr(zipfile.ZipInfo(name, FIXED_DATE), members[name])
    if path.is_file() and filecmp.cmp(tmp, path, shallow=False):
        tmp.unlink()  # unchanged: keep its mtime, so its ETag
    else:
        tmp.replace(path)


def write_unchanged(path: Path, data: bytes) -> None:
    """Write `path` unless it already holds `data`: a rebuilt mirror keeps its ETags (mtime-based),
    so a second demo run finds every upstream file at the revision it cached."""
    if not (path.is_file() and path.read_bytes() == data):
        write_file(path, data)


def build(
    csv_dir: Path,
    content_dir: Path,
    decoys: int = 40,
    decoys_by_zip: dict[str, int] | None = None,
    missing_images: tuple[str, ...] = (),
    decoy: bytes = DECOY,
) -> dict[str, list[str]]:
    """Serve the CSVs of `csv_dir` (upstream file names, flat) with their images and masks; returns
    the upstream files found and absent. Each mask zip holds `decoys` unneeded members (or
    `decoys_by_zip[<hex char>]`), each `decoy`; `missing_images` are left out of the image bucket (404)."""
    csv_dir = Path(csv_dir)
    root = content_dir / PREFIX
    found, absent = [], []
    for upstream in upstream_files():
        source = csv_dir / Path(upstream).name
        if source.is_file():
            write_unchanged(root / "annotations" / upstream, source.read_bytes())
            found.append(upstream)
        else:
            absent.append(upstream)
    for split in SPLITS:
        ids: set[str] = set()
        for kind in ("boxes", "masks", "labels"):
            source = csv_dir / Path(annotation_file(split, kind)).name
            if source.is_file():
                ids |= set(pl.read_csv(source, columns=["ImageID"], infer_schema=False)["ImageID"].to_list())
        for image_id in sorted(ids - set(missing_images)):
            write_unchanged(root / "images" / split / f"{image_id}.jpg", image_bytes(split, image_id))
        segmentation = csv_dir / Path(annotation_file(split, "masks")).name
        if not segmentation.is_file():
            continue
        masks = pl.read_csv(segmentation, infer_schema=False)
        by_zip: dict[str, dict[str, bytes]] = {mask_zip(split, c): {} for c in HEX}
        for row in masks.iter_rows(named=True):
            box = tuple(float(row[c]) if row.get(c) else None for c in ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax"))
            by_zip[mask_zip(split, row["MaskPath"])][row["MaskPath"]] = mask_bytes(row["MaskPath"], box)
        for (archive, needed), first_char in zip(by_zip.items(), HEX, strict=True):
            write_mask_zip(root / "annotations" / archive, needed, (decoys_by_zip or {}).get(first_char, decoys), first_char, decoy)
    return {"found": found, "absent": absent}


def env(mirror: Mirror) -> dict[str, str]:
    return {
        "OPENIMAGES_ANNOTATIONS_URL": f"{mirror.url}/{PREFIX}/annotations",
        "OPENIMAGES_IMAGES_URL": f"{mirror.url}/{PREFIX}/images",
    }
