"""Fudan-FUXI/VIDGEN-1M on the mirror's Hub: several zips `VidGen_video_<n>.zip` holding
`VidGen_video_<n>/<file_id>.mp4` (real mp4s made with ffmpeg), needed clips among unneeded ones."""

import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Callable

import imageio_ffmpeg
import polars as pl

from encord_assets.mirror import hf_hub
from encord_assets.mirror.media import seed_of, write_file, write_zip
from encord_assets.mirror.server import Mirror

REPO = "Fudan-FUXI/VIDGEN-1M"


@cache
def mp4_bytes(key: str, seconds: float = 1.0) -> bytes:
    """A real, small H.264 mp4 whose colour (and so bytes) depends only on `key`."""
    colour = f"0x{seed_of(key) & 0xFFFFFF:06x}"
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "clip.mp4"
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-hide_banner",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                f"color=c={colour}:s=64x48:d={seconds}:r=10",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-fflags",
                "+bitexact",
                "-map_metadata",
                "-1",
                str(out),
            ],
            check=True,
        )
        return out.read_bytes()


def vidgen_clip(file_id: str) -> bytes:
    return mp4_bytes(f"vidgen:{file_id}")


def build(
    rows: pl.DataFrame,
    content_dir: Path,
    decoys: int = 24,
    zips: int = 3,
    distinct_decoys: int = 4,
    clip: Callable[[str], bytes] = vidgen_clip,
) -> None:
    """`clip(file_id)`: a needed member's bytes (benchmarks pass clip-sized ones)."""
    decoy_ids = [f"decoy{n:07d}-Scene-{n % 300:04d}" for n in range(decoys)]
    ids = sorted(set(rows["file_id"].to_list()) | set(decoy_ids), key=seed_of)
    repo = hf_hub.repo_dir(content_dir, REPO)
    for n in range(zips):
        folder = f"VidGen_video_{n}"
        members = {f"{folder}/": b""} | {
            f"{folder}/{i}.mp4": mp4_bytes(f"decoy:{seed_of(i) % distinct_decoys}") if i in decoy_ids else clip(i)
            for i in ids[n::zips]
        }
        write_zip(repo / f"{folder}.zip", members)
    write_file(repo / "VidGen-1M.json", b"[]\n")
    write_file(repo / "README.md", b"# VidGen-1M (mirror)\n")


def routes(mirror: Mirror) -> None:
    hf_hub.routes(mirror)


def env(mirror: Mirror) -> dict[str, str]:
    return hf_hub.env(mirror) | {"VIDGEN_REVISION": hf_hub.repo_sha(mirror.state.content_dir, REPO)}
