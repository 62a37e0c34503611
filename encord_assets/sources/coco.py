"""COCO train2017 images: ranged reads of train2017.zip, or one GET per image for small subsets.

The guide downloads and extracts the whole 18 GB zip for any subset; here the zip's central
directory and the needed members are read by Range, or, when a partition needs few images,
each image is fetched on its own (cheaper than the ~8 MB central directory).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import remotezip
import requests

from encord_assets.lazy import pl
from encord_assets.ledger import FetchLedger
from encord_assets.sources.http import download, new_session
from encord_assets.sources.retry import RetryPolicy, record_error
from encord_assets.sources.work import PartitionWork
from encord_assets.sources.zip_members import copy_members, index_members


class HttpStatusError(Exception):
    def __init__(self, status: int, url: str, headers):
        super().__init__(f"{url} answered {status}")
        self.status = status
        self.headers = headers


class CountingFetcher(remotezip.RemoteFetcher):
    """remotezip's fetcher, counting bytes into the partition's log and keeping HTTP statuses."""

    log: FetchLedger | None = None
    timeout: float = 60.0

    def _request(self, kwargs):
        response = self._session.get(self._url, stream=True, timeout=self.timeout, **kwargs)
        self.log.fetched(int(response.headers.get("Content-Length", 0)))
        if response.status_code >= 400:
            response.close()
            raise HttpStatusError(response.status_code, self._url, response.headers)
        if "Content-Range" not in response.headers:
            response.close()
            raise remotezip.RangeNotSupported("the server does not support Range requests")
        return response.raw, response.headers["Content-Range"]


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


class CocoImages(dg.ConfigurableResource):
    """Fetches COCO images from images.cocodataset.org (or a mirror of it)."""

    base_url: str = "http://images.cocodataset.org"
    image_split: str = "train2017"
    # "zip": ranged reads of the zip; "images": one GET per image; "auto": images below zip_threshold rows
    method: str = "auto"
    zip_threshold: int = 2000
    threads: int = 8
    timeout_seconds: float = 60.0
    attempts: int = 4
    backoff_seconds: float = 0.5
    max_image_bytes: int = 64 << 20
    user_agent: str = "encord-assets"

    @property
    def zip_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/zips/{self.image_split}.zip"

    def image_url(self, file_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/{coco_member(file_id, self.image_split)}"

    def fetch(self, work: PartitionWork) -> None:
        rows, log = work.rows, work.ledger
        retry = RetryPolicy(self.attempts, self.backoff_seconds)
        use_zip = self.method == "zip" or (self.method == "auto" and rows.height >= self.zip_threshold)
        work.log.info(f"fetching {rows.height} COCO images by {'zip ranges' if use_zip else 'single GETs'}")
        session = new_session(self.user_agent)
        if use_zip:
            self._from_zip(rows, log, retry, session)
        else:
            self._one_by_one(rows, log, retry, session)

    def _from_zip(self, rows: pl.DataFrame, log: FetchLedger, retry: RetryPolicy, session: requests.Session) -> None:
        wanted: dict[str, list[str]] = {}
        for file_id, target in rows.select("file_id", "target").iter_rows():
            wanted.setdefault(coco_member(file_id, self.image_split), []).append(target)
        fetcher = type("PartitionFetcher", (CountingFetcher,), {"log": log, "timeout": self.timeout_seconds})
        try:
            # A small first read: the end record, then exactly the central directory.
            zf = retry.call(
                lambda: remotezip.RemoteZip(self.zip_url, initial_buffer_size=256, session=session, fetcher=fetcher)
            )
        except Exception as error:  # noqa: BLE001 - the archive itself failed: every row says why
            record_error(log, [t for targets in wanted.values() for t in targets], error)
            return
        with zf:
            members = index_members(zf, zf.size(), log, self.max_image_bytes)
            copy_members(zf, members, wanted, log, retry, self.zip_url)

    def _one_by_one(self, rows: pl.DataFrame, log: FetchLedger, retry: RetryPolicy, session: requests.Session) -> None:
        by_url: dict[str, list[str]] = {}
        for file_id, target in rows.select("file_id", "target").iter_rows():
            by_url.setdefault(self.image_url(file_id), []).append(target)
        get_images(session, by_url, log, retry, self.threads, self.timeout_seconds, self.max_image_bytes)


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
