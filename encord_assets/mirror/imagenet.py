"""ILSVRC/imagenet-1k on the mirror's Hub: `data/train-XXXXX-of-NNNNN.parquet` with the real
schema (`image` struct{bytes, path}, `label`), several row groups per file, needed images
interleaved with unneeded ones, and the other files the real repository holds."""

from pathlib import Path
from typing import Callable

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from encord_assets.mirror import hf_hub
from encord_assets.mirror.media import jpeg_bytes, seed_of, write_file
from encord_assets.mirror.server import Mirror

REPO = "ILSVRC/imagenet-1k"
SCHEMA = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])), ("label", pa.int64())])


def imagenet_image(file_id: str) -> bytes:
    # larger than the other mirrors' images: real ImageNet JPEGs average ~110 KB
    return jpeg_bytes(f"imagenet:{file_id}", 320, 240)


def write_parquet(path: Path, ids: list[str], row_group_size: int, image: Callable[[str], bytes] = imagenet_image) -> None:
    images = [{"bytes": image(i), "path": f"{i}.JPEG"} for i in ids]
    labels = [seed_of(i.split("_")[0]) % 1000 for i in ids]
    path.parent.mkdir(parents=True, exist_ok=True)
    # Real ImageNet JPEGs (~110 KB) exceed parquet's 4 KB statistics limit, so their footers hold
    # no min/max image bytes; the mirror's small JPEGs would, and bloat the footer.
    table = pa.table({"image": images, "label": labels}, schema=SCHEMA)
    pq.write_table(table, path, row_group_size=row_group_size, write_statistics=["image.path", "label"])


def build(
    rows: pl.DataFrame,
    content_dir: Path,
    decoys: int = 60,
    files: int = 3,
    row_group_size: int = 8,
    image: Callable[[str], bytes] = imagenet_image,
) -> None:
    """`image(file_id)`: an image's bytes (benchmarks pass photo-sized ones)."""
    needed = sorted(set(rows["file_id"].to_list()))
    ids = sorted(set(needed) | {f"n{90_000_000 + n % 7:08d}_{n}" for n in range(decoys)}, key=lambda i: seed_of(i))
    repo = hf_hub.repo_dir(content_dir, REPO)
    for n in range(files):
        write_parquet(repo / "data" / f"train-{n:05d}-of-{files:05d}.parquet", ids[n::files], row_group_size, image)
    write_parquet(repo / "data" / "validation-00000-of-00001.parquet", [f"n09000000_{n}" for n in range(8)], row_group_size)
    write_file(repo / "README.md", b"---\nlicense: other\n---\n# ImageNet-1k (mirror)\n")
    write_file(repo / "classes.py", b"IMAGENET2012_CLASSES = {}\n")


def routes(mirror: Mirror) -> None:
    hf_hub.routes(mirror)


def env(mirror: Mirror) -> dict[str, str]:
    # A pinned commit, as a reproducible run would use; the index is then reused without a request.
    return hf_hub.env(mirror) | {"IMAGENET_REVISION": hf_hub.repo_sha(mirror.state.content_dir, REPO)}
