"""Partition sizes of every source asset for E-MM1's real infos sizes, from synthetic rows.

    uv run python benchmarks/partition_sizing.py [--bandwidth-mb-s 50] [--youtube-clips-per-hour 1000]

Row counts are derived, not counted: each modality's rows fill the real infos file's size
(E-MM1 100M split: image.csv 613 MB, video.csv 458 MB, audio.csv 238 MB, points.csv 59 MB) at the
width of synthetic rows written in the real CSV format; sources whose upstream has a known size
(COCO train2017, ImageNet train, VALOR-1M, ...) get that many rows, and one source per modality
(the one with the largest upstream) takes the rest. Partition keys come from the project's own
key expression (xxhash of the target path mod the registry's shard count), so the spread over
shards is the real one. Time per partition: upstream bytes at `--bandwidth-mb-s`, or, for YouTube
clips, clips at `--youtube-clips-per-hour` (per IP: YouTube throttles by address).
"""

import argparse
import io
import statistics

import polars as pl

from encord_assets.sources.partitions import partition_key_expr
from encord_assets.sources.registry import SOURCES, SourceSpec

MB = 1_000_000
INFOS_MB = {"image": 613, "video": 458, "audio": 238, "points": 59}
# Upstream sizes (rows E-MM1 can hold at most); None: the rest of the modality's file.
KNOWN_ROWS = {
    "image_coco": 118_287,  # COCO train2017
    "image_flickr30k": 31_783,
    "image_imagenet": 1_281_167,  # ILSVRC-2012 train
    "image_googleconceptualcaptions": None,
    "video_vidgen1m": 1_000_000,
    "video_valor": 1_000_000,  # VALOR-1M
    "video_videorefer": 700_000,  # VideoRefer-700K
    "video_internvid": None,
    "audio_vggsound": 199_176,
    "audio_audiocaps": 51_308,
    "audio_wavcaps": 108_317,  # WavCaps' AudioSet strongly-labelled part (YouTube)
    "audio_audioset": None,
    "audio_eshot": 0,  # EShot split only
    "points_3dfuture": 16_563,
    "points_abo": 7_953,
    "points_shapenet": 52_472,
    "points_objaverse": None,
}
# Mean upstream bytes per row. Images: archive size / images (COCO 18 GB / 118k, Flickr30k
# 4.4 GB / 31.8k, ImageNet 146 GB / 1.28M); GCC: a typical web JPEG; clips: a 10 s section at
# 720p (~2.6 Mbit/s with audio); VidGen-1M: several TB / 1M clips; points: a whole
# OpenShape archive is streamed (Objaverse 185 GB / 160 archives; the others ~240 KB per shape).
BYTES_PER_ROW = {"image_coco": 152_000, "image_flickr30k": 138_000, "image_imagenet": 114_000, "image_googleconceptualcaptions": 100_000,
                 "video_vidgen1m": 5_000_000, "points": 240_000}  # fmt: skip
YOUTUBE_CLIP_BYTES = 3_300_000
OBJAVERSE_ARCHIVE_BYTES = 185_000 * MB / 160


def synthetic_rows(spec: SourceSpec, n: int) -> pl.DataFrame:
    """`n` rows shaped like the real infos rows of `spec` (ids, file names, save folder)."""
    i = pl.int_range(0, n, eager=True)
    youtube_id = (i * 2654435761 % 10**11).cast(pl.String).str.zfill(11)
    file_id = {
        "image_imagenet": pl.format("n{}_{}", (i % 1000 + 1440764).cast(pl.String).str.zfill(8), i),
        "image_googleconceptualcaptions": pl.format("https://img{}.example.com/photos/2018/03/{}-large.jpg", i % 997, i),
        "video_vidgen1m": pl.format("vidgen_{}", i),
    }.get(spec.name, i.cast(pl.String))
    base = {"encord_id": i + 10_000_000, "source_dataset": pl.lit(spec.dataset), "dataset_license": pl.lit("CC-BY-4.0")}
    if spec.locator == "youtube_id":
        start = (i % 300).cast(pl.Float64) + 0.5
        columns = base | {"youtube_id": youtube_id, "start_time": start, "end_time": start + 10.0,
                          "file_name": pl.format("{}_{}.mp4", youtube_id, start.cast(pl.Int64))}  # fmt: skip
    else:
        suffix = {"image": ".jpg", "points": ".npy", "video": ".mp4"}[spec.modality]
        columns = base | {"file_id": file_id, "file_name": pl.format("{}{}", file_id.str.replace_all(r"[:/.]", "_"), pl.lit(suffix))}
    frame = pl.select(**columns, save_folder=pl.lit("e-mm1_100m_only"))
    directory = "video" if spec.modality == "audio" else spec.modality
    return frame.with_columns(target=pl.format("{}/{}/{}", "save_folder", pl.lit(directory), "file_name"), split=pl.lit("e-mm1_100m"))


def row_width(spec: SourceSpec) -> float:
    sample = synthetic_rows(spec, 10_000).drop("target", "split")
    buffer = io.BytesIO()
    sample.write_csv(buffer, include_header=False)
    return buffer.tell() / sample.height


def row_counts() -> dict[str, int]:
    counts = {}
    for modality, megabytes in INFOS_MB.items():
        specs = [s for s in SOURCES if s.modality == modality and s.name in KNOWN_ROWS]
        fixed = {s.name: KNOWN_ROWS[s.name] for s in specs if KNOWN_ROWS[s.name] is not None}
        (rest,) = [s for s in specs if KNOWN_ROWS[s.name] is None]
        used = sum(count * row_width(s) for s in specs for name, count in fixed.items() if name == s.name)
        counts |= fixed | {rest.name: max(0, int((megabytes * MB - used) / row_width(rest)))}
    return counts


def bytes_per_row(spec: SourceSpec) -> float:
    if spec.locator == "youtube_id":
        return YOUTUBE_CLIP_BYTES
    return BYTES_PER_ROW.get(spec.name, BYTES_PER_ROW.get(spec.modality, 0))


def rows_per_partition(spec: SourceSpec, n: int) -> list[int]:
    """Rows in each partition of the 100M split (empty ones included)."""
    if spec.partitions is not None:
        keys = len(spec.partitions.keys)
        return [n // keys + (1 if k < n % keys else 0) for k in range(keys)]
    keys = synthetic_rows(spec, n).select(key=partition_key_expr(pl.lit(spec.shards)))["key"]
    counts = keys.value_counts()["count"].to_list()
    return counts + [0] * (spec.shards - len(counts))


def table(bandwidth: float, clips_per_hour: float) -> pl.DataFrame:
    counts = row_counts()
    records = []
    for spec in SOURCES:
        n = counts.get(spec.name, 0)
        sizes = rows_per_partition(spec, n) if n else [0]
        partitions = len(spec.partitions.keys) if spec.partitions is not None else spec.shards * len(spec.splits)
        per_row = bytes_per_row(spec)
        if spec.name == "points_objaverse":
            upstream = [OBJAVERSE_ARCHIVE_BYTES] * len(sizes)
        else:
            upstream = [size * per_row for size in sizes]
        if spec.locator == "youtube_id":
            minutes = [size / clips_per_hour * 60 for size in sizes]
        else:
            minutes = [b / (bandwidth * MB) / 60 for b in upstream]
        records.append({
            "asset": spec.name, "rows (100M split)": n, "partitions": partitions,
            "rows/partition min / median / max": f"{min(sizes):,} / {int(statistics.median(sizes)):,} / {max(sizes):,}",
            "upstream GB/partition (median)": round(statistics.median(upstream) / 1e9, 2),
            "minutes/partition median / max": f"{statistics.median(minutes):.1f} / {max(minutes):.1f}",
            "upstream TB total": round(n * per_row / 1e12 if spec.name != "points_objaverse" else 160 * OBJAVERSE_ARCHIVE_BYTES / 1e12, 2),
            "hours total (one worker)": round(sum(minutes) / 60, 1),
        })  # fmt: skip
    return pl.DataFrame(records)


def markdown(frame: pl.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bandwidth-mb-s", type=float, default=50.0)
    parser.add_argument("--youtube-clips-per-hour", type=float, default=1000.0)
    args = parser.parse_args()
    frame = table(args.bandwidth_mb_s, args.youtube_clips_per_hour)
    print(markdown(frame))
    print(f"\nall sources: {frame['rows (100M split)'].sum():,} rows, {frame['upstream TB total'].sum():.1f} TB upstream, "
          f"{frame['partitions'].sum():,} partitions, largest asset {frame['partitions'].max():,} partitions")  # fmt: skip


if __name__ == "__main__":
    main()
