"""The placed files of a release as Encord import manifests (JSON and CSV), streamed and split at Encord's limits.

One entry per object (a file serving an audio and a video row, or rows of two splits, is listed once):
- `videos`: files of video rows (an E-MM1 audio clip that is also a video row's file is this video);
- `audio`: files of audio rows only. They are .mp4 clips; Encord imports audio under the top-level key
  `audio` (`DataUploadItems.audio`, `DataUploadAudio` in the SDK's `encord.orm.storage`), whose supported
  containers include .mp4 and .m4a (Encord's Index audio documentation);
- `images`: image files;
- `image_groups`: E-MM1 groups (data groups, triplets) of two or more placed members that are all images,
  as `objectUrl_0..n` with `createVideo: false`, beside their members' own entries.
Point clouds (.npy) have no Encord data type (Encord's scenes take BAG, DB3, E57, LAS, LAZ, MCAP, PCD,
PLY): they are left out and counted in the report, as is every row whose file another entry already lists.

`clientMetadata` holds only types of Encord's metadata schema (number, varchar, text); the keys and types
are written beside the manifests as `<stem>_metadata_schema.json`, ready for Encord's schema import.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from encord_assets.layout.paths import temporary_sibling, write_atomically
from encord_assets.lazy import pl, plh, pc, ds
from encord_assets.products import links
from encord_assets.products.encord.urls import encode_key

# Encord's limits per import file (its cloud import documentation)
MAX_ITEMS = 500_000
MAX_URLS = 1_000_000
MAX_TITLE_CHARS = 300
# Encord's top-level key for the files of each modality, in the order the manifests list them
KINDS = {"video": "videos", "audio": "audio", "image": "images"}
IMAGE_GROUPS = "image_groups"
# rows grouped by file at once (bounds memory: ~250 MB at this size), and rows handed to the writer at once
ROWS_PER_BUCKET = 125_000
BATCH_ROWS = 50_000
CSV_HEADERS = {
    "videos": ["ObjectUrl", "Video title"],
    "audio": ["ObjectUrl", "Audio title"],
    "images": ["ObjectUrl", "Image title"],
    IMAGE_GROUPS: ["ObjectUrl", "Image group title", "Create video"],
}
# clientMetadata key -> Encord metadata schema type
METADATA_SCHEMA = {
    "encord_video_id": "number",
    "encord_audio_id": "number",
    "encord_image_id": "number",
    "eshot_audio_id": "number",
    "split": "varchar",
    "source_dataset": "varchar",
    "dataset_license": "varchar",
    "encord_text_id": "number",
    "caption": "text",
    "eshot_category": "varchar",
    "annotation_labels": "varchar",
    "group_count": "number",
    "triplet_count": "number",
    "group_ids": "text",
    "group_id": "varchar",
    "group_kind": "varchar",
    "release": "varchar",
}
LEFT_OUT_POINTS = "points_no_encord_data_type"
LEFT_OUT_SAME_FILE = "file_listed_by_another_row"


class ManifestError(ValueError):
    """Manifests that cannot be written as asked, with the reason."""


def shorten_title(title: str) -> str:
    """At most MAX_TITLE_CHARS characters: a longer title keeps its start and ends with a hash of the whole."""
    if len(title) <= MAX_TITLE_CHARS:
        return title
    digest = hashlib.sha256(title.encode()).hexdigest()[:16]
    return f"{title[: MAX_TITLE_CHARS - len(digest) - 1]}~{digest}"


def memberships(groups: pl.LazyFrame | None, triplets: pl.LazyFrame | None) -> pl.LazyFrame:
    """(split, modality, encord_id, group_id, group_kind, position) of every placed member of a group or triplet."""
    parts = []
    if groups is not None:
        parts += [
            groups.filter(pl.col(f"{m}_present")).select(
                pl.lit("e-mm1_100m").alias("split"), pl.lit(m).alias("modality"), pl.col(f"encord_{m}_id").alias("encord_id"),
                pl.concat_str(pl.col("nn"), pl.lit("/"), pl.col("encord_text_id")).alias("group_id"),
                pl.lit("group").alias("group_kind"), pl.lit(position).alias("position"),
            )
            for position, m in enumerate(links.MEMBERS)
        ]
    if triplets is not None:
        parts += [
            triplets.filter(pl.col(f"{role}_present")).select(
                pl.lit("e-mm1_1m").alias("split"), pl.col(f"{role}_modality").alias("modality"), pl.col(f"encord_{role}_id").alias("encord_id"),
                pl.concat_str(pl.lit("triplet/"), pl.col("encord_text_id")).alias("group_id"),
                pl.lit("triplet").alias("group_kind"), pl.lit(position).alias("position"),
            )
            for position, role in enumerate(("paired", "annotated"))
        ]
    if not parts:
        return pl.LazyFrame(schema={"split": pl.String, "modality": pl.String, "encord_id": pl.Int64, "group_id": pl.String, "group_kind": pl.String, "position": pl.Int32})
    return pl.concat(parts, how="vertical_relaxed")


def objects(files: pl.LazyFrame, members: pl.LazyFrame) -> pl.LazyFrame:
    """One row per importable file: its Encord key, file name and metadata, in manifest order."""
    importable = files.filter(pl.col("modality").is_in(list(KINDS)))
    is_eshot = pl.col("split") == "eshot"

    def id_of(modality: str, eshot: bool) -> pl.Expr:
        return pl.col("encord_id").filter((pl.col("modality") == modality) & (is_eshot if eshot else ~is_eshot)).min()

    def joined(column: str, condition: pl.Expr = pl.lit(True)) -> pl.Expr:
        values = pl.col(column).filter(condition).drop_nulls().unique().sort().str.join(",")
        return pl.when(values.str.len_chars() > 0).then(values)

    per_file = importable.group_by("target").agg(
        pl.when((pl.col("modality") == "video").any()).then(pl.lit("videos"))
        .when((pl.col("modality") == "audio").any()).then(pl.lit("audio"))
        .otherwise(pl.lit("images")).alias("kind"),
        pl.col("file_name").first(),
        id_of("video", False).alias("encord_video_id"),
        id_of("audio", False).alias("encord_audio_id"),
        id_of("image", False).alias("encord_image_id"),
        id_of("audio", True).alias("eshot_audio_id"),
        joined("split"),
        joined("source_dataset"),
        joined("dataset_license"),
        pl.col("encord_text_id").min(),
        pl.col("caption").sort_by("encord_text_id", nulls_last=True).first(),
        pl.col("labels").filter(is_eshot).list.explode(keep_nulls=False, empty_as_null=False).unique().sort().str.join(",").alias("eshot_category"),
        pl.col("labels").filter(~is_eshot).list.explode(keep_nulls=False, empty_as_null=False).unique().sort().str.join(",").alias("annotation_labels"),
    )
    in_groups = (
        members.join(importable.select("split", "modality", "encord_id", "target"), on=["split", "modality", "encord_id"])
        .group_by("target")
        .agg(
            (pl.col("group_kind") == "group").sum().alias("group_count"),
            (pl.col("group_kind") == "triplet").sum().alias("triplet_count"),
            pl.col("group_id").unique().sort().str.join(",").alias("group_ids"),
        )
    )
    order = pl.col("kind").replace_strict({k: n for n, k in enumerate(KINDS.values())}, return_dtype=pl.Int32)
    return (
        per_file.join(in_groups, on="target", how="left")
        .with_columns(
            *[pl.when(pl.col(c).str.len_chars() > 0).then(pl.col(c)).alias(c) for c in ("eshot_category", "annotation_labels")],
            pl.col("group_count", "triplet_count").fill_null(0),
        )
        .sort(order, "target")
    )


def image_groups(files: pl.LazyFrame, members: pl.LazyFrame) -> pl.LazyFrame:
    """Groups whose placed members are two or more images: (group_id, group_kind, targets in member order)."""
    images = files.filter(pl.col("modality") == "image").select("split", "modality", "encord_id", "target").unique(["split", "encord_id"])
    # members are the release's: every one is placed, images have a target here, other modalities none
    return (
        members.join(images, on=["split", "modality", "encord_id"], how="left")
        .group_by("group_id", "group_kind")
        .agg(pl.col("target").sort_by("position"), pl.col("target").is_not_null().all().alias("all_images"))
        .filter(pl.col("all_images") & (pl.col("target").list.len() >= 2))
        .select("group_id", "group_kind", pl.col("target").alias("targets"))
        .sort("group_id")
    )


@dataclass
class _Part:
    items: int = 0
    urls: int = 0
    kind: str | None = None


@dataclass
class ManifestFiles:
    """Writes entries into `<stem>_0001.json` (and/or .csv), ..., starting a new file at the item and URL limits."""

    out: Path
    stem: str
    formats: tuple[str, ...]
    max_items: int
    written: list[Path] = field(default_factory=list)
    # each file is written under a temporary name and renamed when all are complete
    _staged: list[Path] = field(default_factory=list)
    _part: _Part | None = None
    _handles: dict = field(default_factory=dict)
    _first: bool = True

    def _open(self) -> None:
        number = len(self.written) // len(self.formats) + 1
        self._part = _Part()
        for fmt in self.formats:
            path = self.out / f"{self.stem}_{number:04d}.{fmt}"
            self.written.append(path)
            self._staged.append(temporary_sibling(path))
            handle = open(self._staged[-1], "w", encoding="utf-8", newline="")
            self._handles[fmt] = (handle, csv.writer(handle, lineterminator="\n") if fmt == "csv" else None)
            if fmt == "json":
                handle.write("{")

    def _close(self) -> None:
        if self._part is None:
            return
        for fmt, (handle, _) in self._handles.items():
            if fmt == "json":
                handle.write(("\n]," if self._part.kind else "") + '\n"skip_duplicate_urls": true\n}\n')
            handle.close()
        self._handles = {}
        self._part = None

    def add(self, kind: str, entry: dict, csv_rows: list[list[str]]) -> None:
        urls = len(csv_rows)
        if self._part is None or self._part.items + 1 > self.max_items or self._part.urls + urls > MAX_URLS:
            self._close()
            self._open()
        part = self._part
        for fmt, (handle, writer) in self._handles.items():
            if fmt == "json":
                if part.kind != kind:
                    handle.write(("\n]," if part.kind else "") + f"\n{json.dumps(kind)}: [\n")
                else:
                    handle.write(",\n")
                handle.write(json.dumps(entry, ensure_ascii=False))
            else:
                if part.kind != kind:
                    writer.writerow(CSV_HEADERS[kind])
                writer.writerows(csv_rows)
        part.kind = kind
        part.items += 1
        part.urls += urls

    def finish(self) -> list[Path]:
        self._close()
        for staged, path in zip(self._staged, self.written):
            staged.replace(path)
        return self.written


def _object_batches(files: pl.LazyFrame, members: pl.LazyFrame, rows: int, scratch: Path):
    """The objects of `files` as dicts in manifest order (Encord key, then bucket, then target), a batch at a time.

    Grouping a release's rows by file holds every group in memory at once (~1 GB for 1M rows), so the rows
    are grouped in buckets of files (by a stable hash of the target), each written to a parquet file."""
    buckets = max(1, -(-rows // ROWS_PER_BUCKET))
    paths = []
    for bucket in range(buckets):
        chosen = files.filter(plh.col("target").nchash.xxhash64() % buckets == bucket) if buckets > 1 else files
        paths.append(scratch / f"objects_{bucket:04d}.parquet")
        objects(chosen, members).sink_parquet(paths[-1])
    for kind in KINDS.values():
        for path in paths:
            for batch in ds.dataset(path).to_batches(filter=pc.field("kind") == kind, batch_size=BATCH_ROWS):
                yield from batch.to_pylist()


def write_manifests(
    files: pl.LazyFrame,
    groups: pl.LazyFrame | None,
    triplets: pl.LazyFrame | None,
    url_base: str,
    out: Path,
    stem: str,
    formats: tuple[str, ...] = ("json",),
    max_items: int = MAX_ITEMS,
    release: str | None = None,
    left_out: dict[str, int] | None = None,
) -> dict:
    """Write the manifests of `files` (a release's files table) under `out`; returns the report (also
    written as `<stem>_report.json`), with the entries per key and every left-out row counted by reason
    (`left_out`: rows the caller left out before, by reason)."""
    if not 1 <= max_items <= MAX_ITEMS:
        raise ManifestError(f"--max-items {max_items}: Encord takes 1 to {MAX_ITEMS} items per import file")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob(f"{stem}_[0-9][0-9][0-9][0-9].*"), *out.glob(f".{stem}_[0-9][0-9][0-9][0-9].*.tmp")]:
        stale.unlink()
    members = memberships(groups, triplets)
    writer = ManifestFiles(out, stem, formats, max_items)
    entries = dict.fromkeys([*KINDS.values(), IMAGE_GROUPS], 0)
    shortened = []

    def title_of(name: str, target: str) -> str:
        title = shorten_title(name)
        if title != name:
            shortened.append({"target": target, "title": title})
        return title

    with tempfile.TemporaryDirectory(prefix="encord_manifest_") as scratch:
        rows = files.select(pl.len()).collect().item()
        for row in _object_batches(files, members, rows, Path(scratch)):
            url = f"{url_base}/{encode_key(row['target'])}"
            title = title_of(row["file_name"], row["target"])
            metadata = {key: row[key] for key in METADATA_SCHEMA if row.get(key) is not None}
            if release:
                metadata["release"] = release
            writer.add(row["kind"], {"objectUrl": url, "title": title, "clientMetadata": metadata}, [[url, title]])
            entries[row["kind"]] += 1
        for row in image_groups(files, members).collect().iter_rows(named=True):
            urls = [f"{url_base}/{encode_key(t)}" for t in row["targets"]]
            title = title_of(row["group_id"], row["group_id"])
            metadata = {"group_id": row["group_id"], "group_kind": row["group_kind"], **({"release": release} if release else {})}
            entry = {"title": title, **{f"objectUrl_{n}": u for n, u in enumerate(urls)}, "createVideo": False, "clientMetadata": metadata}
            writer.add(IMAGE_GROUPS, entry, [[u, title, "false"] for u in urls])
            entries[IMAGE_GROUPS] += 1
    written = writer.finish()

    counts = files.select(
        pl.len().alias("rows"),
        (pl.col("modality") == "points").sum().alias("points_rows"),
        pl.col("target").filter(pl.col("modality") == "points").n_unique().alias("points_files"),
        pl.col("modality").is_in(list(KINDS)).sum().alias("importable_rows"),
    ).collect().row(0, named=True)
    files_listed = sum(entries[k] for k in KINDS.values())
    report = {
        "release": release,
        "url_base": url_base,
        "files": [p.name for p in written],
        "entries": entries,
        "rows": counts["rows"],
        "left_out_rows": {
            LEFT_OUT_POINTS: counts["points_rows"],
            LEFT_OUT_SAME_FILE: counts["importable_rows"] - files_listed,
            **(left_out or {}),
        },
        "left_out_points_files": counts["points_files"],
        "titles_shortened": len(shortened),
        "titles_shortened_examples": shortened[:100],
        "max_items_per_file": max_items,
        "notes": [
            "point clouds (.npy) have no Encord data type (Encord's scenes take BAG, DB3, E57, LAS, LAZ, MCAP, PCD, PLY): left out",
            "a file serving several rows (an audio and a video row, two splits) is one entry, with every row's ids in its clientMetadata",
            *(["CSV manifests carry no clientMetadata (Encord's CSV import has no column for it): use the JSON files for metadata"] if "csv" in formats else []),
        ],
    }
    for name, content in (("metadata_schema", METADATA_SCHEMA), ("report", report)):
        text = json.dumps(content, indent=1, ensure_ascii=False) + "\n"
        write_atomically(out / f"{stem}_{name}.json", lambda path, text=text: Path(path).write_text(text, encoding="utf-8"))
    return report
