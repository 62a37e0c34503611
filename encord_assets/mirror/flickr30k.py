"""nlphuji/flickr30k on the mirror's Hub: `flickr30k-images.zip` with members
`flickr30k-images/<id>.jpg`, needed images among unneeded ones, and the repository's other files."""

import zipfile
from pathlib import Path
from typing import Callable

import polars as pl

from encord_assets.mirror import hf_hub
from encord_assets.mirror.media import jpeg_bytes, seed_of, write_file, write_zip
from encord_assets.mirror.server import Mirror

REPO = "nlphuji/flickr30k"
ARCHIVE = "flickr30k-images.zip"


def flickr_image(file_id: str) -> bytes:
    return jpeg_bytes(f"flickr30k:{file_id}")


def build(rows: pl.DataFrame, content_dir: Path, decoys: int = 60, image: Callable[[str], bytes] = flickr_image) -> None:
    """`image(file_id)`: a member's bytes (benchmarks pass photo-sized ones)."""
    ids = sorted(set(rows["file_id"].to_list()) | {str(9_000_000_000 + n) for n in range(decoys)}, key=seed_of)
    members = {"flickr30k-images/": b""} | {f"flickr30k-images/{i}.jpg": image(i) for i in ids}
    repo = hf_hub.repo_dir(content_dir, REPO)
    write_zip(repo / ARCHIVE, members, zipfile.ZIP_DEFLATED)
    write_file(repo / "flickr_annotations_30k.csv", b"raw,sentids,split,filename,img_id\n")
    write_file(repo / "README.md", b"# Flickr30k (mirror)\n")


def routes(mirror: Mirror) -> None:
    hf_hub.routes(mirror)


def env(mirror: Mirror) -> dict[str, str]:
    return hf_hub.env(mirror) | {"FLICKR30K_REVISION": hf_hub.repo_sha(mirror.state.content_dir, REPO)}
