"""YouTube clips: our asset (one Dagster run of a partition) vs the download guide's way
(the yt-dlp CLI with --download-sections, one clip after another), on the same local mirror.

    uv run python benchmarks/youtube_clips.py [--clips 24] [--threads 4]

Prints clips per second and upstream bytes per clip (as the mirror counted them) for both,
and our figure divided by the baseline's.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from encord_assets.demo import normalized_rows
from encord_assets.materialize import Materializer
from encord_assets.mirror.build import attach, build_content
from encord_assets.mirror.server import Mirror
from encord_assets.mirror.youtube import write_one_partition_infos
from encord_assets.sources.ffmpeg import ffmpeg_on_path
from encord_assets.sources.registry import source_by_name
from encord_assets.settings import DEFAULT_YOUTUBE_FORMAT as DEFAULT_FORMAT


def guide_loop(rows, template: str, out_dir: Path) -> None:
    """One `yt-dlp` process per clip, sequentially, as the download guide does."""
    command = [shutil.which("yt-dlp") or sys.executable, *([] if shutil.which("yt-dlp") else ["-m", "yt_dlp"])]
    ffmpeg = ffmpeg_on_path()
    for youtube_id, start, end, file_name in rows.select("youtube_id", "start_time", "end_time", "file_name").iter_rows():
        subprocess.run(
            [
                *command, "--quiet", "--no-warnings", "--ffmpeg-location", ffmpeg,
                "-f", DEFAULT_FORMAT, "--merge-output-format", "mp4",
                "--download-sections", f"*{start}-{end}", "--force-keyframes-at-cuts",
                "-o", str(out_dir / file_name), template.format(youtube_id=youtube_id),
            ],
            check=True,
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-youtube-"))
    ids = [f"bench{n:06d}" for n in range(args.clips)]
    write_one_partition_infos(work / "infos", ids, source_by_name("video_valor").shards)
    rows = normalized_rows(work / "infos")
    build_content(rows, work / "mirror")
    results = {}
    with Mirror(work / "mirror") as mirror:
        os.environ.update(attach(mirror))
        template = os.environ["YOUTUBE_URL_TEMPLATE"]

        (work / "guide").mkdir()
        mirror.reset_stats()
        started = time.monotonic()
        guide_loop(rows, template, work / "guide")
        results["guide loop (yt-dlp CLI, sequential)"] = (time.monotonic() - started, mirror.stats()["bytes_sent"])

        (work / "dagster_home").mkdir()
        os.environ.update(
            {
                "ROOT_DATA_PATH": str(work / "root"),
                "DAGSTER_HOME": str(work / "dagster_home"),
                "ENCORD_INFOS_DIR": str(work / "infos"),
                "YOUTUBE_THREADS": str(args.threads),
            }
        )
        with dg.DagsterInstance.get() as instance:
            materializer = Materializer(instance)
            materializer.run("infos_video", "e-mm1_100m", raise_on_error=True)
            (key,) = materializer.source_partitions("video_valor", "video")
            mirror.reset_stats()
            started = time.monotonic()
            materializer.run("video_valor", key, raise_on_error=True)
            results[f"video_valor asset ({args.threads} threads, one run)"] = (time.monotonic() - started, mirror.stats()["bytes_sent"])
    shutil.rmtree(work, ignore_errors=True)

    n = len(ids)
    print(f"{n} clips of 2-4 s on the local mirror\n")
    print("| method | seconds | clips/s | upstream bytes/clip |\n|---|---|---|---|")
    for name, (seconds, sent) in results.items():
        print(f"| {name} | {seconds:.1f} | {n / seconds:.2f} | {sent / n:,.0f} |")
    (base_s, base_b), (ours_s, ours_b) = results.values()
    print(f"| ratio (asset / guide loop) | | {base_s / ours_s:.2f}x | {ours_b / base_b:.2f}x |")


if __name__ == "__main__":
    main()
