"""Point clouds from OpenShape's training data on Hugging Face: `.npy` members of tar.gz archives.

`OpenShape/openshape-training-data` holds `3D-FUTURE.tar.gz`, `ABO.tar.gz`,
`ShapeNet.tar.gz` and `Objaverse/000-000.tar.gz` ... `000-159.tar.gz`; each member
`<any dirs>/<file_id>.npy` is one shape. Each partition is one archive, read once as a
stream from the `resolve` URL (following the Hub's 302 to its CDN; the token goes to the
Hub only), extracting only the needed members and closing the connection as soon as the
last one is found. The archive is never written to disk, nor to the Hugging Face cache.

Objaverse publishes no id -> archive mapping, so the archives' members are indexed as
they are read (sources/archive_index.py): later runs skip archives with nothing missing,
and rows found in no archive end `unavailable` once every archive has been read.
"""

from __future__ import annotations

import io

import requests

from encord_assets.lazy import pl
from encord_assets.ledger import FetchLedger
from encord_assets.sources.archive_index import ArchiveIndex
from encord_assets.sources.hf import HfDatasetSource, stem_of
from encord_assets.sources.retry import classify, record_error
from encord_assets.settings import OPENSHAPE_REPO_ID
from encord_assets.sources.tar_members import TarPass, stage_members
from encord_assets.sources.work import PartitionWork


def archive_path(dataset: str, key: str) -> str:
    return f"Objaverse/{key}.tar.gz" if dataset == "Objaverse" else f"{key}.tar.gz"


def npy_key(name: str) -> str | None:
    return stem_of(name) if name.endswith(".npy") else None


class CountingStream(io.RawIOBase):
    """A response body that counts what it reads into the partition's log."""

    def __init__(self, raw, log: FetchLedger):
        self.raw = raw
        self.log = log

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self.raw.readinto(buffer)
        self.log.fetched(count, requests=0)
        return count


class OpenShapePoints(HfDatasetSource):
    """Streams OpenShape's tar.gz archives from the Hub (or anything that speaks its API)."""

    repo_id: str = OPENSHAPE_REPO_ID
    timeout_seconds: float = 60.0
    max_member_bytes: int = 256 << 20

    @staticmethod
    def _index(work: PartitionWork) -> ArchiveIndex:
        return ArchiveIndex(work.store, work.spec.name, work.spec.partitions.keys)

    def rows_to_fetch(self, work: PartitionWork, rows: pl.DataFrame) -> pl.DataFrame:
        return self._index(work).rows_to_fetch(work.partition_key, rows)

    def rows_located(self, work: PartitionWork, rows: pl.DataFrame) -> pl.DataFrame:
        return self._index(work).rows_located(work.partition_key, rows, work.ledger.results()["target"])

    def fetch(self, work: PartitionWork) -> None:
        rows, log = work.rows, work.ledger
        spec = work.spec
        key = work.partition_key
        path = archive_path(spec.dataset, key)
        index = self._index(work) if spec.locates_rows else None
        search = rows
        if index is not None and index.all_complete():
            missing = index.unlocated(rows)
            self._report_not_found(index, key, missing, log)
            search = rows.filter(~pl.col("target").is_in(missing["target"].implode()))
        wanted: dict[str, list[str]] = {}
        for file_id, target in search.select("file_id", "target").iter_rows():
            wanted.setdefault(file_id, []).append(target)
        if not wanted:
            return
        work.log.info(f"reading {self.repo_id}/{path} for {len(wanted)} shape(s)")
        try:
            commit = self.index_revision()
            result = self.retry.call(lambda: self.read_archive(commit, path, wanted, log))
        except Exception as error:  # noqa: BLE001 - every row gets an outcome
            if index is None or classify(error).transient:
                record_error(log, [t for targets in wanted.values() for t in targets], error)
                return
            work.log.warning(f"{path}: {error}; counting it as an archive that holds nothing")
            result = TarPass([], True)
        if index is not None:
            index.record(key, result.seen, result.complete)
        if not result.complete:
            return
        located_here = set(index.located().filter(pl.col("archive") == key)["file_id"]) if index is not None else None
        for file_id, targets in wanted.items():
            if located_here is None or file_id in located_here:
                for target in targets:
                    log.unavailable(target, "not_in_archive", f"{file_id}.npy is not a member of {self.repo_id}/{path}")
        if index is not None and index.all_complete():
            self._report_not_found(index, key, index.unlocated(search), log)

    def _report_not_found(self, index: ArchiveIndex, key: str, rows: pl.DataFrame, log: FetchLedger) -> None:
        for file_id, target in rows.select("file_id", "target").iter_rows():
            log.unavailable(target, "not_in_any_archive", f"{file_id}.npy is in none of the {len(index.keys)} archives of {self.repo_id}")
        if rows.height:
            index.record_not_found(key, rows["target"].to_list())

    def read_archive(self, commit: str, path: str, wanted: dict[str, list[str]], log: FetchLedger) -> TarPass:
        """One streamed pass over the archive; `wanted` loses the keys it finds (so a retry
        looks only for the rest)."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers

        url = hf_hub_url(self.repo_id, path, repo_type="dataset", revision=commit, endpoint=self.endpoint.rstrip("/"))
        # requests drops the Authorization header when the Hub redirects to another host
        headers = build_hf_headers(token=self.token or False, library_name="encord-assets")
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout_seconds) as response:
            log.fetched(0)
            response.raise_for_status()
            return stage_members(CountingStream(response.raw, log), wanted, log, npy_key, self.max_member_bytes)


# the resource the registry names by this module's name (sources/registry.py)
RESOURCE = OpenShapePoints
