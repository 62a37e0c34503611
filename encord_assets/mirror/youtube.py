"""YouTube on the mirror: /youtube/<youtube_id>.mp4 for every youtube_id in the rows.

Each is a real mp4 (H.264 video, AAC audio) long enough for the latest end_time asked of
that id, tiny and low-bitrate so the sample builds in seconds. yt-dlp reaches it through
its generic extractor. Files are cached by their recipe, so a rebuild copies instead of encoding.
"""

import hashlib
import math
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from encord_assets.mirror.media import seed_of
from encord_assets.mirror.server import Mirror
from encord_assets.sources.ffmpeg import ffmpeg_exe
from encord_assets.sources.partitions import partition_key_expr

PREFIX = "youtube"
RECIPE = "testsrc2 96x64 10fps x264 g10 crf40 + sine aac 32k mono 16kHz, v1"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "encord-assets" / "mirror-youtube"


def video_path(youtube_id: str) -> str:
    return f"/{PREFIX}/{youtube_id}.mp4"


def encode(youtube_id: str, seconds: int, path: Path) -> None:
    """A deterministic mp4 whose tone depends on the id (so different ids differ)."""
    tone = 200 + seed_of(f"youtube:{youtube_id}") % 800
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate=10:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=16000:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "40", "-g", "10", "-threads", "1",
            "-c:a", "aac", "-b:a", "32k", "-ac", "1",
            "-movflags", "+faststart", "-shortest", "-map_metadata", "-1", "-fflags", "+bitexact",
            str(tmp),
        ],
        check=True,
    )  # fmt: skip
    tmp.replace(path)


def cached_video(youtube_id: str, seconds: int) -> Path:
    key = hashlib.sha256(f"{RECIPE}|{youtube_id}|{seconds}".encode()).hexdigest()[:24]
    path = CACHE_DIR / f"{key}.mp4"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        encode(youtube_id, seconds, path)
    return path


def build(rows: pl.DataFrame, content_dir: Path) -> None:
    needed = rows.filter(pl.col("youtube_id").is_not_null()).group_by("youtube_id").agg(pl.col("end_time").max())

    def place(item: tuple[str, float]) -> None:
        youtube_id, end = item
        target = content_dir / video_path(youtube_id).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached_video(youtube_id, math.ceil(end) + 2), target)

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(place, needed.iter_rows()))


def env(mirror: Mirror) -> dict[str, str]:
    # no politeness pause against our own loopback mirror
    return {"YOUTUBE_URL_TEMPLATE": f"{mirror.url}/{PREFIX}/{{youtube_id}}.mp4", "YOUTUBE_SLEEP_SECONDS": "0"}


VIDEO_HEADER = "encord_video_id,source_dataset,dataset_license,youtube_id,start_time,end_time,file_id,file_name,save_folder"


def write_one_partition_infos(infos_dir: Path, youtube_ids: list[str], shards: int) -> None:
    """An E-MM1 video infos file of Valor clips (2-4 s) whose targets all fall in one partition
    (for tests and benchmarks: a real partition holds hundreds of clips, the sample one or two)."""
    candidates = (
        pl.DataFrame({"youtube_id": youtube_ids})
        .join(pl.DataFrame({"n": range(50 * shards)}), how="cross")
        .with_columns(file_name=pl.format("{}_{}.mp4", "youtube_id", "n"), split=pl.lit("e-mm1_100m"))
        .with_columns(target=pl.format("e-mm1_100m_only/video/{}", "file_name"))
        .with_columns(key=partition_key_expr(pl.lit(shards)))
    )
    key = candidates.filter(pl.col("youtube_id") == youtube_ids[0])["key"][0]
    chosen = candidates.filter(pl.col("key") == key).unique("youtube_id", keep="first", maintain_order=True)
    lines = [
        f"{100 + i},Valor,MIT,{youtube_id},{1.5 + i % 3},{3.5 + i % 3 * 1.5},,{file_name},e-mm1_100m_only"
        for i, (youtube_id, file_name) in enumerate(chosen.select("youtube_id", "file_name").iter_rows())
    ]
    path = infos_dir / "e-mm1_100m" / "infos" / "video.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([VIDEO_HEADER, *lines]) + "\n")
