"""Releases: immutable, named snapshots of the placed files, with the products and the infos checksums.

A release is a folder of tables under ROOT/_encord_assets/releases/<name>/:
- `files.parquet`: one row per infos row placed or present (a file serving an audio and a video row
  appears twice, with one target), and per Open Images image placed or present;
- `groups.parquet`, `triplets.parquet`, `eshot_categories.parquet`: the products, with each member's
  presence *in the release*;
- `captions.parquet`, `infos_files.parquet` (path, bytes, sha256 of every infos file), `attribution.parquet`;
- `boxes.parquet`, `masks.parquet` when the release holds Open Images images (see openimages_items.py);
- `release.json` (name, creation time, filters, counts), written last: a release without it is incomplete.
`releases/latest.json` names the newest release.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from encord_assets.layout.paths import UnsafePath, bookkeeping_key, check_component
from encord_assets.lazy import pl
from encord_assets.products import items as item_tables
from encord_assets.products import links, openimages_items
from encord_assets.sources.registry import SOURCES
from encord_assets.store import DatasetStore
from encord_assets.store.backends import sha256_of

LATEST = "latest"
FILES_COLUMNS = (
    "split", "modality", "source", "source_dataset", "dataset_license", "encord_id", "save_folder", "file_name",
    "target", "bytes", "sha256", "encord_text_id", "caption", "labels",
)
# Where each fetcher's files come from, for the attribution table.
UPSTREAMS = {
    "coco": "COCO train2017 (images.cocodataset.org)",
    "youtube": "YouTube clips (start_time-end_time of each youtube_id)",
    "imagenet": "Hugging Face ILSVRC/imagenet-1k",
    "flickr30k": "Hugging Face nlphuji/flickr30k",
    "vidgen": "Hugging Face Fudan-FUXI/VIDGEN-1M",
    "url_images": "the image URL of each row (Google Conceptual Captions)",
    "openshape": "Hugging Face OpenShape/openshape-training-data",
    "openimages": "Open Images V6 (CVDF open-images-dataset bucket; annotations CC BY 4.0, storage.googleapis.com/openimages)",
}


class ReleaseError(ValueError):
    """A release that cannot be created or found, with the reason."""


@dataclass
class Filters:
    splits: list[str] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    # source asset names (image_coco) or source dataset names (COCO), case-insensitive
    sources: list[str] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    exclude_licenses: list[str] = field(default_factory=list)

    def expr(self) -> pl.Expr:
        license = pl.col("dataset_license").fill_null("").str.to_lowercase()
        conditions = [pl.lit(True)]
        if self.splits:
            conditions.append(pl.col("split").is_in(self.splits))
        if self.modalities:
            conditions.append(pl.col("modality").is_in(self.modalities))
        if self.sources:
            wanted = [s.lower() for s in self.sources]
            conditions.append(pl.col("source").str.to_lowercase().is_in(wanted) | pl.col("source_dataset").str.to_lowercase().is_in(wanted))
        if self.licenses:
            conditions.append(license.is_in([x.lower() for x in self.licenses]))
        if self.exclude_licenses:
            conditions.append(~license.is_in([x.lower() for x in self.exclude_licenses]))
        return pl.all_horizontal(conditions)


def release_key(name: str, table: str) -> str:
    return bookkeeping_key("releases", name, table)


def check_name(name: str) -> str:
    try:
        check_component(name)
    except UnsafePath as error:
        raise ReleaseError(f"release name {name!r}: {error}") from None
    if name == LATEST:
        raise ReleaseError(f"{LATEST!r} names the newest release; choose another name")
    return name


def infos_checksums(infos_dir: Path) -> pl.DataFrame:
    """Every CSV and JSON file under the infos folder: what the release was made from."""
    files = sorted(p for p in Path(infos_dir).rglob("*") if p.is_file() and p.suffix in (".csv", ".json"))
    return pl.DataFrame(
        {
            "path": [p.relative_to(infos_dir).as_posix() for p in files],
            "bytes": [p.stat().st_size for p in files],
            "sha256": [sha256_of(p) for p in files],
        },
        schema={"path": pl.String, "bytes": pl.Int64, "sha256": pl.String},
    )


def file_links(groups: pl.LazyFrame | None, triplets: pl.LazyFrame | None, categories: pl.LazyFrame | None) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(captions, labels) per item (split, modality, encord_id): the caption of a group or triplet the item is
    in (the lowest text id), and its labels (EShot categories, annotations of triplets it is annotated in)."""
    caption_parts = []
    if groups is not None:
        caption_parts += [
            groups.select(pl.lit("e-mm1_100m").alias("split"), pl.lit(m).alias("modality"), pl.col(f"encord_{m}_id").alias("encord_id"), "encord_text_id", "caption")
            for m in links.MEMBERS
        ]
    label_parts = []
    if triplets is not None:
        caption_parts += [
            triplets.select(pl.lit("e-mm1_1m").alias("split"), pl.col(f"{role}_modality").alias("modality"), pl.col(f"encord_{role}_id").alias("encord_id"), "encord_text_id", "caption")
            for role in ("paired", "annotated")
        ]
        label_parts.append(
            triplets.select(pl.lit("e-mm1_1m").alias("split"), pl.col("annotated_modality").alias("modality"), pl.col("encord_annotated_id").alias("encord_id"), pl.col("annotation_label").alias("label"))
        )
    if categories is not None:
        label_parts.append(categories.select(pl.lit("eshot").alias("split"), "modality", pl.col("eshot_id").alias("encord_id"), pl.col("category").alias("label")))
    keys = ["split", "modality", "encord_id"]
    captions = (
        pl.concat(caption_parts, how="vertical_relaxed")
        .filter(pl.col("encord_id").is_not_null() & pl.col("caption").is_not_null())
        .group_by(keys)
        .agg(pl.col("encord_text_id", "caption").sort_by("encord_text_id").first())
        if caption_parts
        else pl.LazyFrame(schema={"split": pl.String, "modality": pl.String, "encord_id": pl.Int64, "encord_text_id": pl.Int64, "caption": pl.String})
    )
    labels = (
        pl.concat(label_parts, how="vertical_relaxed")
        .filter(pl.col("encord_id").is_not_null() & pl.col("label").is_not_null())
        .group_by(keys)
        .agg(pl.col("label").unique().sort().alias("labels"))
        if label_parts
        else pl.LazyFrame(schema={"split": pl.String, "modality": pl.String, "encord_id": pl.Int64, "labels": pl.List(pl.String)})
    )
    return captions, labels


def attribution(files: pl.LazyFrame) -> pl.DataFrame:
    upstream = {spec.name: UPSTREAMS.get(spec.fetcher, spec.fetcher) for spec in SOURCES}
    return (
        files.group_by("source_dataset", "source", pl.col("dataset_license").fill_null("(not stated in the infos)"))
        .agg(pl.len().alias("files"), pl.col("bytes").sum().alias("bytes"))
        .with_columns(pl.col("source").replace_strict(upstream, default=None).alias("upstream"))
        .sort("source_dataset", "dataset_license")
        .collect(engine="streaming")
    )


def snapshot(store: DatasetStore, infos_dir: Path, filters: Filters) -> tuple[pl.LazyFrame, dict[str, pl.LazyFrame | None], pl.LazyFrame]:
    """(files, products, captions) of what is placed now, filtered: the tables a release is made of, lazily."""
    base = store.uri("")
    everything = item_tables.items(store)
    # Members count as present when they are in the release, so products describe the release alone.
    chosen = everything.with_columns((pl.col("present") & filters.expr()).alias("present"))
    captions = item_tables.captions(store)
    products = {
        "groups": links.groups(infos_dir, chosen, captions, base),
        "triplets": links.triplets(infos_dir, chosen, captions, base),
        "eshot_categories": links.eshot_categories(infos_dir, chosen, base),
    }
    file_captions, file_labels = file_links(products["groups"], products["triplets"], products["eshot_categories"])
    files = (
        chosen.filter(pl.col("present"))
        .rename({"row_id": "encord_id"})
        .join(file_captions, on=["split", "modality", "encord_id"], how="left")
        .join(file_labels, on=["split", "modality", "encord_id"], how="left")
        .with_columns(pl.col("labels").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .select(FILES_COLUMNS)
    )
    if (detection_files := openimages_items.files(store, FILES_COLUMNS)) is not None:
        files = pl.concat([files, detection_files.filter(filters.expr())], how="vertical_relaxed")
    files = files.sort("split", "modality", "encord_id", "target")
    return files, products, captions


def exists(store: DatasetStore, name: str) -> bool:
    return store.read_bytes(release_key(name, "release.json")) is not None


def create_release(store: DatasetStore, infos_dir: Path, name: str, filters: Filters, created_at: dt.datetime | None = None) -> dict:
    """Snapshot what is placed now (filtered) as release `name`; refused when the name exists."""
    check_name(name)
    if exists(store, name):
        raise ReleaseError(f"release {name!r} already exists at {store.uri(release_key(name, ''))}: releases are immutable; choose another name")
    created_at = created_at or dt.datetime.now(dt.timezone.utc)
    base = store.uri("")
    files, products, captions = snapshot(store, infos_dir, filters)
    store.write(release_key(name, "files.parquet"), files.sink_parquet)
    (files_path,) = store.local_tables([release_key(name, "files.parquet")])
    written = pl.scan_parquet(files_path)
    counts = {}
    for product, frame in products.items():
        if frame is not None:
            store.write(release_key(name, f"{product}.parquet"), frame.sink_parquet)
            (path,) = store.local_tables([release_key(name, f"{product}.parquet")])
            coverage = {"groups": links.group_coverage, "triplets": links.triplet_coverage, "eshot_categories": links.category_coverage}[product]
            counts.update(coverage(pl.scan_parquet(path)))
    splits = written.select(pl.col("split").unique()).collect()["split"].to_list()
    store.write(release_key(name, "captions.parquet"), captions.filter(pl.col("split").is_in(splits)).sink_parquet)
    store.write(release_key(name, "infos_files.parquet"), infos_checksums(infos_dir).write_parquet)
    if (detections := openimages_items.annotation_tables(store, written)) is not None:
        for table, frame in zip(("boxes", "masks"), detections, strict=True):
            store.write(release_key(name, f"{table}.parquet"), frame.write_parquet)
            counts[table] = frame.height
    credits = attribution(written)
    store.write(release_key(name, "attribution.parquet"), credits.write_parquet)
    totals = written.select(pl.len().alias("files"), pl.col("target").n_unique().alias("unique_files"), pl.col("bytes").sum().alias("bytes")).collect().row(0, named=True)
    summary = {
        "name": name,
        "created_at": created_at.isoformat(),
        "filters": asdict(filters),
        "root": base,
        **{k: int(v or 0) for k, v in totals.items()},
        "by_split_modality": written.group_by("split", "modality").len().sort("split", "modality").collect().rows(),
        "licenses": credits.group_by("dataset_license").agg(pl.col("files").sum()).sort("dataset_license").rows(),
        **counts,
    }
    store.write_bytes(release_key(name, "release.json"), json.dumps(summary, indent=1).encode())
    latest = read_latest(store)
    if latest is None or latest["created_at"] <= summary["created_at"]:
        store.write_bytes(bookkeeping_key("releases", "latest.json"), json.dumps({"name": name, "created_at": summary["created_at"]}).encode())
    return summary


def read_latest(store: DatasetStore) -> dict | None:
    data = store.read_bytes(bookkeeping_key("releases", "latest.json"))
    return json.loads(data) if data else None


def list_releases(store: DatasetStore) -> list[dict]:
    """Every complete release's release.json, most recent first."""
    found = [key for key in store.find(bookkeeping_key("releases")) if key.endswith("/release.json")]
    releases = [json.loads(data) for key in found if (data := store.read_bytes(key))]
    return sorted(releases, key=lambda r: r["created_at"], reverse=True)


def resolve(store: DatasetStore, name: str) -> str:
    """The release `name` stands for (`latest` is the newest); a clear error when there is none."""
    if name == LATEST:
        latest = read_latest(store)
        if latest is None:
            raise ReleaseError(f"no release under {store.uri(bookkeeping_key('releases'))} yet: create one with `encord-assets release create NAME`")
        return latest["name"]
    if not exists(store, check_name(name)):
        known = ", ".join(r["name"] for r in list_releases(store)) or "none"
        raise ReleaseError(f"no release {name!r} under {store.uri(bookkeeping_key('releases'))} (releases: {known})")
    return name


def release_info(store: DatasetStore, name: str) -> dict:
    return json.loads(store.read_bytes(release_key(resolve(store, name), "release.json")))


def release_table(store: DatasetStore, name: str, table: str) -> pl.LazyFrame | None:
    """A table of a release (resolved name), scanned lazily from a local file; None when it has none."""
    paths = store.local_tables([release_key(name, f"{table}.parquet")])
    return pl.scan_parquet(paths[0]) if paths else None


def diff(store: DatasetStore, a: str, b: str) -> dict[str, pl.DataFrame]:
    """Files (by target) added in `b`, removed from `a`, and changed (another sha256)."""
    old, new = (release_table(store, resolve(store, n), "files").select("target", "bytes", "sha256").unique("target") for n in (a, b))
    return {
        "added": new.join(old, on="target", how="anti").sort("target").collect(),
        "removed": old.join(new, on="target", how="anti").sort("target").collect(),
        "changed": old.join(new, on="target", suffix="_new").filter(pl.col("sha256") != pl.col("sha256_new"))
        .select("target", pl.col("sha256").alias("sha256_old"), "sha256_new", pl.col("bytes").alias("bytes_old"), "bytes_new")
        .sort("target")
        .collect(),
    }
