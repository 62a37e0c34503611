"""VidGen-1M clips from the zips of `Fudan-FUXI/VIDGEN-1M` (member stem = `file_id`).

An index asset reads every zip's central directory by Range (nothing else) and records
which zip holds each clip. A partition then opens only the zips that hold its clips and
reads the needed members by coalesced parallel ranges (or one streaming read of a zip it
needs most of); a clip in no zip is `unavailable`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from encord_assets.lazy import pl
from encord_assets.ledger import FetchLedger
from encord_assets.sources.archive_names import member_name_problem
from encord_assets.sources.hf import HfDatasetSource, stem_of
from encord_assets.sources.retry import record_error
from encord_assets.sources.work import PartitionWork

INDEX_SCHEMA = {
    "file_id": str,
    "zip": str,
    "zip_size": int,
    "member": str,
    "member_size": int,
    "revision": str,
}


class VidGenZips(HfDatasetSource):
    """Video clips stored as members of many zips in a Hugging Face dataset repository."""

    repo_id: str = "Fudan-FUXI/VIDGEN-1M"
    files: str = "*.zip"
    max_clip_bytes: int = 2 << 30

    def build_index(self, context: dg.AssetExecutionContext, revision: str) -> tuple[pl.DataFrame, dict]:
        def read(path: str, size: int, counter: FetchLedger) -> pl.DataFrame:
            _, zf = self.remote_archive(revision, path, counter)
            with zf:
                entries = [
                    (stem_of(info.filename), path, size, info.filename, info.file_size, revision)
                    for info in zf.infolist()
                    if not info.is_dir() and not member_name_problem(info.filename)
                ]
            return pl.DataFrame(entries, schema=INDEX_SCHEMA, orient="row")

        return self.index_files(context, revision, "the central directories", read, INDEX_SCHEMA)

    def fetch(self, work: PartitionWork, index: pl.LazyFrame) -> None:
        rows, log = work.rows, work.ledger
        wanted, found, commit = self.look_up(rows, index, log, "zip")
        by_zip = found.sort("zip").partition_by("zip", as_dict=True, maintain_order=True)
        work.log.info(f"reading {found.height} clips from {len(by_zip)} zip(s)")

        def read_zip(item) -> None:
            (path,), members = item
            clips = {file_id: wanted[file_id] for file_id in members["file_id"]}
            try:
                self.stage_zip_members(commit, path, clips, log, self.max_clip_bytes)
            except Exception as error:  # noqa: BLE001 - every row gets an outcome
                pending = [t for targets in clips.values() for t in targets if not log.has_result(t)]
                record_error(log, pending, error)

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(read_zip, by_zip.items()))


# the resource the registry names by this module's name (sources/registry.py)
RESOURCE = VidGenZips
