"""COCO train2017 images: ranged reads of train2017.zip, or one GET per image for small subsets.

The guide downloads and extracts the whole 18 GB zip for any subset; here the zip's central
directory and the needed members are read by Range (coalesced, over parallel connections, or in
one streaming read for dense partitions), or, when a partition needs few images, each image is
fetched on its own (cheaper than the ~8 MB central directory). `auto` weighs these per partition
from the zip's end record and the measured round trip, and records its pick and why.
"""

from __future__ import annotations

import random
import zipfile
from concurrent.futures import ThreadPoolExecutor

import requests

from encord_assets.ledger import FetchLedger
from encord_assets.sources.http import download, new_session
from encord_assets.sources.ranged_reads import LOCAL_HEADER, METHODS, Choice, HttpSource, Member, RangedReads, check_method, choose, measure_rtt
from encord_assets.sources.retry import RetryPolicy, record_error
from encord_assets.sources.work import PartitionWork
from encord_assets.sources.zip_directory import TAIL_BYTES, end_record, read_range
from encord_assets.sources.zip_members import index_members, remote_zip, stage_members



class IncompleteImage(Exception):
    """The body is not a whole image: a cut transfer or a lying Content-Length (transient: a retry may get it whole)."""


def check_image(path, url: str) -> None:
    """A single GET has no checksum (the zip's members have CRCs): decode the image to know it is whole."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise IncompleteImage(f"{url} did not send a whole image: {error}") from None


def coco_member(file_id: str, split: str) -> str:
    return f"{split}/{int(file_id):012d}.jpg"


COCO_METHODS = ("images", *METHODS)


def estimated_members(tail: bytes, count: int) -> tuple[list[Member], int]:
    """`count` members at random places of the archive (a hashed partition's are), sized as its
    average member, and the central directory's size, from the end record in `tail` (the archive's
    last bytes): enough to weigh single GETs against reading the central directory before reading
    it. Random, not evenly spread: neighbours then coalesce into ranges as often as a real subset's do."""
    end = end_record(tail)
    if end is None:
        raise zipfile.BadZipFile("no end of central directory record")
    entries, directory_bytes, directory_start = end
    stride = directory_start // max(1, entries)
    # a member's data: its stride less its local header (a name of ~30 bytes), so neighbours do not overlap
    data = max(1, stride - LOCAL_HEADER.size - 32)
    slots = sorted(random.Random(0).sample(range(max(entries, count)), count))
    members = [Member(str(n), slot * stride, data, data, 0) for n, slot in enumerate(slots)]
    return members, directory_bytes


class CocoImages(RangedReads):
    """Fetches COCO images from images.cocodataset.org (or a mirror of it)."""

    base_url: str = "http://images.cocodataset.org"
    image_split: str = "train2017"
    # "auto": one GET per image, coalesced ranges of the zip or one streaming read of it, chosen per
    # partition; or "images", "ranges", "stream"
    method: str = "auto"
    max_image_bytes: int = 64 << 20
    user_agent: str = "encord-assets"

    @property
    def zip_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/zips/{self.image_split}.zip"

    def image_url(self, file_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/{coco_member(file_id, self.image_split)}"

    def fetch(self, work: PartitionWork) -> None:
        rows, log = work.rows, work.ledger
        session = new_session(self.user_agent)
        wanted: dict[str, list[str]] = {}
        by_url: dict[str, list[str]] = {}
        for file_id, target in rows.select("file_id", "target").iter_rows():
            wanted.setdefault(coco_member(file_id, self.image_split), []).append(target)
            by_url.setdefault(self.image_url(file_id), []).append(target)
        check_method(self.method, COCO_METHODS)
        source = HttpSource(self.zip_url, self.timeout_seconds, user_agent=self.user_agent)
        source.counter.listener = log.fetched
        try:
            choice = self._first_choice(source, len(wanted))
        except Exception as error:  # noqa: BLE001 - the archive itself failed: every row says why
            record_error(log, [t for targets in wanted.values() for t in targets], error)
            return
        if choice is None or choice.method != "single":
            self._from_zip(source, wanted, log, session, choice)
            return
        log.chose(self.zip_url, choice.method, choice.reason)
        work.log.info(f"fetching {rows.height} COCO images by single GETs: {choice.reason}")
        get_images(session, by_url, log, self.retry, self.connections, self.timeout_seconds, self.max_image_bytes)

    def _first_choice(self, source: HttpSource, count: int) -> Choice | None:
        """Before the central directory: single GETs when configured, or when `auto` estimates them
        faster than reading the directory and then the members; None: read the directory."""
        if self.method == "images":
            return Choice("single", f"{count} images, method images set by configuration", {})
        if self.method != "auto":
            return None

        def estimate() -> Choice:
            size = source.size
            members, directory_bytes = estimated_members(read_range(source, max(0, size - TAIL_BYTES), size), count)
            return choose(members, size, measure_rtt(source), self, single_gets=True, index_bytes=directory_bytes)

        choice = self.retry.call(estimate)
        return choice if choice.method == "single" else None

    def _from_zip(self, source: HttpSource, wanted: dict[str, list[str]], log: FetchLedger, session: requests.Session, choice: Choice | None) -> None:
        try:
            zf = self.retry.call(lambda: remote_zip(self.zip_url, session, log, self.timeout_seconds))
        except Exception as error:  # noqa: BLE001 - the archive itself failed: every row says why
            record_error(log, [t for targets in wanted.values() for t in targets], error)
            return
        with zf:
            archive_size = zf.size()
            members = index_members(zf, archive_size, log, self.max_image_bytes)
        stage_members(source, archive_size, members, wanted, log, self, self.zip_url, choice)


def get_images(
    session: requests.Session, by_url: dict[str, list[str]], log: FetchLedger, retry: RetryPolicy, threads: int, timeout: float, max_bytes: int
) -> None:
    """One GET per image URL (url -> targets that want it), in threads; each image decoded before it is staged."""

    def fetch_image(item: tuple[str, list[str]]) -> None:
        url, targets = item
        path = log.staging_path()

        def get() -> int:
            size = download(session, url, path, log, timeout, max_bytes)
            check_image(path, url)
            return size

        try:
            size = retry.call(get)
        except Exception as error:  # noqa: BLE001 - every row gets an outcome
            path.unlink(missing_ok=True)
            record_error(log, targets, error)
            return
        log.staged_all(targets, path, size)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fetch_image, by_url.items()))


# the resource the registry names by this module's name (sources/registry.py)
RESOURCE = CocoImages
