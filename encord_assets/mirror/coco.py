"""COCO on the mirror: /coco/zips/train2017.zip and /coco/train2017/<id:012d>.jpg."""

from pathlib import Path
from typing import Callable

import polars as pl

from encord_assets.mirror.media import jpeg_bytes, write_file, write_zip
from encord_assets.mirror.server import Mirror
from encord_assets.sources.coco import coco_member

PREFIX = "coco"


def coco_image(file_id: str) -> bytes:
    return jpeg_bytes(f"coco:{int(file_id)}")


def build(rows: pl.DataFrame, content_dir: Path, decoys: int = 40, image: Callable[[str], bytes] = coco_image) -> None:
    """The zip holds every needed image among `decoys` unneeded ones, interleaved; `image(file_id)` is
    an image's bytes (benchmarks pass photo-sized ones)."""
    needed = sorted({int(i) for i in rows["file_id"].to_list()})
    decoy_ids = [900_000_000 + n for n in range(decoys)]
    ids = sorted(set(needed) | set(decoy_ids), key=lambda i: (i * 2654435761) % 2**32)
    members = {"train2017/": b""} | {coco_member(str(i), "train2017"): image(str(i)) for i in ids}
    write_zip(content_dir / PREFIX / "zips" / "train2017.zip", members)
    for i in needed:
        write_file(content_dir / PREFIX / coco_member(str(i), "train2017"), members[coco_member(str(i), "train2017")])


def env(mirror: Mirror) -> dict[str, str]:
    return {"COCO_BASE_URL": f"{mirror.url}/{PREFIX}"}
