"""Open Images V6 by class: the images, boxes, segmentation masks and image-level labels of chosen
classes, fetching only their bytes.

The seed procedure downloads all sixteen `<split>-masks-<c>.zip` files and extracts them to pick
one class's masks, then fetches images one by one with a downloader that stops at the first
missing image. Here the annotation CSVs are fetched once per upstream revision (ETag) and filtered
with polars streaming; each mask zip's central directory is read by Range once per zip and
revision (parsed by `zip_directory`, kept under ROOT), then only the needed members by
`ranged_reads` (neighbours coalesced into one range, ranges over parallel connections, or one
streaming read of a zip a partition needs most of); images are parallel GETs, a 404 an
`unavailable` row.

The Dagster assets (class list, annotation tables, the per-(class, split) source asset) are in
`openimages_assets.py`; this module is the fetcher resource and what it reads.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import requests

from encord_assets.lazy import pl
from encord_assets.ledger import FetchLedger
from encord_assets.sources.coco import get_images
from encord_assets.sources.http import HttpStatusError, download, new_session
from encord_assets.sources.ranged_reads import HttpSource, RangedReads
from encord_assets.sources.retry import Unavailable, record_error
from encord_assets.sources.work import PartitionWork
from encord_assets.sources.zip_directory import read_directory
from encord_assets.sources.zip_members import stage_members, table_members
from encord_assets.store import DatasetStore

SPLITS = ("train", "validation", "test")
LABEL_TYPES = ("images", "boxes", "masks", "labels")
CLASS_DESCRIPTIONS = "v5/class-descriptions-boxable.csv"
SEGMENTATION_CLASSES = "v5/classes-segmentation.txt"
MAX_CSV_BYTES = 1 << 40


def annotation_file(split: str, kind: str) -> str:
    """The upstream path (under the annotations base URL) of a split's annotation CSV."""
    if kind == "boxes":
        return "v6/oidv6-train-annotations-bbox.csv" if split == "train" else f"v5/{split}-annotations-bbox.csv"
    if kind == "masks":
        return f"v5/{split}-annotations-object-segmentation.csv"
    return f"v5/{split}-annotations-human-imagelabels-boxable.csv"


def mask_zip(split: str, mask_path: str) -> str:
    """Masks are grouped in sixteen zips by the first hex character of the ImageID."""
    return f"v5/{split}-masks/{split}-masks-{mask_path[0].lower()}.zip"


def mid_stem(mid: str) -> str:
    """`/m/0gxl3` -> `m0gxl3`, as the seed procedure names its files."""
    return mid.replace("/", "")


def class_folder(display_name: str, mid: str) -> str:
    return f"{display_name}_{mid_stem(mid)}"


def normalize_name(name: str) -> str:
    return " ".join(name.split()).casefold()


class UnknownClass(ValueError):
    pass


def resolve_classes(descriptions: pl.DataFrame, requested: list[str]) -> list[tuple[str, str]]:
    """(MID, display name) of each requested class, by MID or display name (case-insensitive, spaces
    normalized); an unknown one is an error listing the closest names."""
    by_name = {normalize_name(name): (mid, name) for mid, name in descriptions.select("mid", "display_name").iter_rows()}
    by_mid = {mid: (mid, name) for mid, name in descriptions.select("mid", "display_name").iter_rows()}
    resolved, unknown = [], []
    for wanted in requested:
        found = by_mid.get(wanted.strip()) or by_name.get(normalize_name(wanted))
        if found is None:
            unknown.append(wanted)
        elif found not in resolved:
            resolved.append(found)
    if unknown:
        names = [name for _, name in by_mid.values()]
        lines = []
        for wanted in unknown:
            close = difflib.get_close_matches(wanted, names, n=5, cutoff=0.5) or difflib.get_close_matches(
                wanted.title(), names, n=5, cutoff=0.4
            )
            lines.append(f"{wanted!r} (closest: {', '.join(close) if close else 'none'})")
        raise UnknownClass(f"unknown Open Images class(es): {'; '.join(lines)}")
    return resolved


def read_class_descriptions(path: Path) -> pl.DataFrame:
    # no header: MID, display name
    return pl.read_csv(path, has_header=False, new_columns=["mid", "display_name"], schema_overrides=[pl.String, pl.String])


# --- the mask zips


@dataclass(frozen=True)
class UpstreamFile:
    url: str
    size: int
    etag: str


def chosen_values(setting: str, allowed: tuple[str, ...], what: str) -> list[str]:
    """The comma-separated values of a setting, each one of `allowed`."""
    chosen = [value.strip() for value in setting.split(",") if value.strip()]
    if unknown := [value for value in chosen if value not in allowed]:
        raise ValueError(f"unknown Open Images {what}(s) {unknown}: choose from {', '.join(allowed)}")
    return chosen


class OpenImages(RangedReads):
    """Open Images V6: chosen classes, splits and label types, from the annotation CSVs, the mask zips
    and the CVDF image bucket (or a mirror of them)."""

    annotations_url: str = "https://storage.googleapis.com/openimages"
    images_url: str = "https://open-images-dataset.s3.amazonaws.com"
    # comma-separated display names (case-insensitive) or MIDs
    classes: str = ""
    splits: str = ",".join(SPLITS)
    label_types: str = ",".join(LABEL_TYPES)
    # at most this many images per class and split (0: all), chosen by a seeded hash of the ImageID
    max_samples: int = 0
    seed: int = 0
    # the folder under ROOT the OID layout goes to
    folder: str = "OID_V6"
    # image GETs at once (mask zips are read over `connections`)
    threads: int = 8
    # masks are a few KB each: their reads are bound by round trips, not bytes, so more connections pay
    connections: int = 32
    max_image_bytes: int = 64 << 20
    user_agent: str = "encord-assets"

    @property
    def class_list(self) -> list[str]:
        return [c.strip() for c in self.classes.split(",") if c.strip()]

    @property
    def split_list(self) -> list[str]:
        return chosen_values(self.splits, SPLITS, "split")

    @property
    def label_type_list(self) -> list[str]:
        return chosen_values(self.label_types, LABEL_TYPES, "label type")

    def annotation_url(self, path: str) -> str:
        return f"{self.annotations_url.rstrip('/')}/{path}"

    def image_url(self, split: str, image_id: str) -> str:
        return f"{self.images_url.rstrip('/')}/{split}/{image_id}.jpg"

    def session(self) -> requests.Session:
        return new_session(self.user_agent)

    def head(self, session: requests.Session, url: str) -> UpstreamFile | None:
        """Size and ETag of `url`; None when upstream has no such file (404)."""

        def ask() -> requests.Response:
            response = session.head(url, timeout=self.timeout_seconds, allow_redirects=True)
            if response.status_code != 404:
                response.raise_for_status()
            return response

        response = self.retry.call(ask)
        if response.status_code == 404:
            return None
        return UpstreamFile(url, int(response.headers.get("Content-Length", 0)), response.headers.get("ETag", "").strip('"'))

    def cached_upstream(self, store: DatasetStore, path: str, log: FetchLedger) -> Path | None:
        """A local copy of annotation file `path`, kept under ROOT and fetched again only when its
        ETag changes; None when upstream has no such file."""
        session = self.session()
        remote = self.head(session, self.annotation_url(path))
        if remote is None:
            return None
        key = store.state_key("openimages", "upstream", path)
        tag_key = f"{key}.etag"
        if not (remote.etag and store.read_bytes(tag_key) == remote.etag.encode() and store.local_tables([key])):
            store.write(key, lambda tmp: self.retry.call(lambda: download(session, remote.url, tmp, log, self.timeout_seconds, MAX_CSV_BYTES)))
            store.write_bytes(tag_key, remote.etag.encode())
        return store.local_tables([key])[0]

    # --- fetching one partition

    def fetch(self, work: PartitionWork) -> None:
        rows, log = work.rows, work.ledger
        for target, content in rows.filter(pl.col("kind") == "table").select("target", "content").iter_rows():
            path = log.staging_path()
            path.write_text(content)
            log.staged(target, path)
        images = rows.filter(pl.col("kind") == "image")
        masks = rows.filter(pl.col("kind") == "mask")
        work.log.info(f"fetching {images.height} Open Images images and {masks.height} masks")
        session = self.session()
        if images.height:
            self.fetch_images(work, images, session)
        for archive, members in masks.group_by("archive", maintain_order=True):
            self.fetch_masks(work, archive[0], members)

    def fetch_images(self, work: PartitionWork, images: pl.DataFrame, session: requests.Session) -> None:
        """One GET per image not already in another chosen class's folder of the split (copied from there)."""
        log = work.ledger
        elsewhere = work.store.present([t for ts in images["copy_from"].to_list() for t in ts])
        by_url: dict[str, list[str]] = {}
        for url, target, sources in images.select("url", "target", "copy_from").iter_rows():
            source = next((s for s in sources if s in elsewhere), None)
            if source is None:
                by_url.setdefault(url, []).append(target)
                continue
            path = log.staging_path()
            with work.store.local_file(source) as local:
                path.write_bytes(local.read_bytes())
            log.staged(target, path)
            log.note("images_copied_from_other_classes")
        get_images(session, by_url, log, self.retry, self.threads, self.timeout_seconds, self.max_image_bytes)

    def zip_directory(self, store: DatasetStore, source: HttpSource) -> pl.DataFrame:
        """The zip's central directory (`zip_directory.SCHEMA`): read by two ranges once per zip and
        revision (ETag, else size), then from ROOT, so later partitions skip it."""
        key = store.state_key("openimages", "zip_entries", source.url.rsplit("/", 1)[-1], f"{source.etag or source.size}.parquet")
        table = store.read_parquet(key)
        if table is None:
            table = read_directory(source, source.size)
            store.write(key, table.write_parquet)
        return table

    def fetch_masks(self, work: PartitionWork, archive: str, rows: pl.DataFrame) -> None:
        log = work.ledger
        wanted: dict[str, list[str]] = {}
        for member, target in rows.select("member", "target").iter_rows():
            wanted.setdefault(member, []).append(target)
        source = HttpSource(self.annotation_url(archive), self.timeout_seconds, user_agent=self.user_agent)
        source.counter.listener = log.fetched

        def directory() -> pl.DataFrame:
            try:
                source.resolve()
            except HttpStatusError as error:
                if error.status == 404:
                    raise Unavailable("not_found", f"{source.url} not found") from None
                raise
            return self.zip_directory(work.store, source)

        try:
            table = self.retry.call(directory)
        except Exception as error:  # noqa: BLE001 - the archive itself failed: every row says why
            record_error(log, [t for ts in wanted.values() for t in ts], error)
            return
        members = table_members(table, wanted, source.size, log, self.max_image_bytes)
        stage_members(source, source.size, members, wanted, log, self, archive)


# the resource the registry names by this module's name (sources/registry.py)
RESOURCE = OpenImages
