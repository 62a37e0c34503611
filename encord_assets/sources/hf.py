"""Ranged reads of files in Hugging Face dataset repositories, through huggingface_hub.

`HfDatasetSource` is the base of every fetcher that reads a dataset repository: it builds
an `HfFileSystem` for its own endpoint and token (passed explicitly, never read from the
environment at import, and never logged), resolves its pinned revision to a commit, lists
files, and opens them at that commit with a cache that fits the read (`cache_type="none"`
for parquet, a read-ahead sized per zip member) while counting every byte received into
the partition's FetchLog. `copy_zip_members` stages chosen members of one remote zip.
"""

import fnmatch
import re
import zipfile
from pathlib import PurePosixPath
from typing import Callable

import dagster as dg
import polars as pl
from huggingface_hub import HfApi, HfFileSystem
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from encord_assets.layout.outcomes import FetchLog
from encord_assets.sources.retry import RetryPolicy, Unavailable, record_error
from encord_assets.sources.zip_members import copy_members, index_members

DEFAULT_ENDPOINT = "https://huggingface.co"
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
# zipfile reads a member's 30-byte local header, its name and extra field, then the data:
# one read-ahead of this much more than name + data covers the whole member in one request.
LOCAL_HEADER_SLACK = 30 + 128


def hf_url(repo_id: str, revision: str, path: str = "") -> str:
    """`hf://datasets/ORG/NAME@REV/PATH`, the path HfFileSystem resolves."""
    return f"hf://datasets/{repo_id}@{revision}/{path}".rstrip("/")


def stem_of(member: str) -> str:
    """`a/b/<stem>.jpg` -> `<stem>`: upstream files are named by the id E-MM1 calls file_id."""
    return PurePosixPath(member).name.split(".", 1)[0]


def count_reads(file, log: FetchLog | None):
    """Count, into `log`, every byte `file` (an fsspec buffered file) receives from upstream."""
    if log is None:
        return file
    fetch = file.cache.fetcher

    def counted(start: int, end: int) -> bytes:
        data = fetch(start, end)
        log.fetched(len(data))
        return data

    file.cache.fetcher = counted
    return file


def fit_read_ahead(file, info: zipfile.ZipInfo) -> None:
    """Size the read-ahead of `file` to `info`'s member, so reading it is one request
    (fsspec's readahead cache reads `blocksize` past each miss)."""
    file.cache.blocksize = info.compress_size + len(info.filename.encode()) + LOCAL_HEADER_SLACK


class HfDatasetSource(dg.ConfigurableResource):
    """A dataset repository on the Hugging Face Hub (or anything that speaks its API)."""

    repo_id: str
    endpoint: str = DEFAULT_ENDPOINT
    # secret: sent to the endpoint only, never logged or stored
    token: str | None = None
    # a branch, tag or commit; a commit sha makes runs reproducible
    revision: str = "main"
    attempts: int = 4
    backoff_seconds: float = 0.5
    threads: int = 4

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.attempts, self.backoff_seconds)

    def filesystem(self) -> HfFileSystem:
        # token=False, not None: never fall back to a token saved on this machine
        return HfFileSystem(endpoint=self.endpoint.rstrip("/"), token=self.token or False, skip_instance_cache=True)

    def api(self) -> HfApi:
        return HfApi(endpoint=self.endpoint.rstrip("/"), token=self.token or False)

    def index_revision(self) -> str:
        """The commit the configured revision names (no request when it is already a commit)."""
        if COMMIT_SHA.match(self.revision):
            return self.revision
        return self.retry.call(lambda: self.api().dataset_info(self.repo_id, revision=self.revision).sha)

    def list_files(self, commit: str, pattern: str) -> list[tuple[str, int]]:
        """(path, size) of the repository's files matching a glob `pattern`, in path order."""
        folder = pattern.split("*", 1)[0].rpartition("/")[0] or None
        entries = self.retry.call(
            lambda: list(self.api().list_repo_tree(self.repo_id, folder, recursive=True, revision=commit, repo_type="dataset"))
        )
        return sorted((e.path, e.size) for e in entries if hasattr(e, "size") and fnmatch.fnmatch(e.path, pattern))

    def open(self, fs: HfFileSystem, commit: str, path: str, size: int | None, log: FetchLog | None, **options):
        """Open `path` at `commit` for ranged reads; a missing file is `Unavailable`."""
        try:
            file = fs.open(hf_url(self.repo_id, commit, path), "rb", size=size, **options)
        except (FileNotFoundError, EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError) as error:
            raise Unavailable("not_found", f"{self.repo_id}@{commit}: {path} not found ({type(error).__name__})") from None
        return count_reads(file, log)

    def check_index(self, index: pl.DataFrame) -> str:
        """The commit an index was built at; refuse one built at another pinned commit."""
        commits = index["revision"].unique().to_list() if index.height else [self.index_revision()]
        if COMMIT_SHA.match(self.revision) and commits != [self.revision]:
            raise dg.Failure(f"the index was built at {commits}, the revision setting is {self.revision}: materialize the index asset again")
        return commits[0]

    def copy_zip_members(
        self,
        fs: HfFileSystem,
        commit: str,
        path: str,
        size: int | None,
        wanted: dict[str, list[str]],
        log: FetchLog,
        max_member_bytes: int,
        member_of: Callable[[str], str] = stem_of,
    ) -> None:
        """Stage the members of zip `path` whose `member_of(name)` is a key of `wanted`
        (key -> targets): the central directory, then each member in one ranged read, in
        archive order. Every target gets an outcome."""
        try:
            file = self.retry.call(lambda: self.open(fs, commit, path, size, log, cache_type="readahead", block_size=1 << 12))
            zf = self.retry.call(lambda: zipfile.ZipFile(file))
        except Exception as error:  # noqa: BLE001 - the archive itself failed: every row says why
            for targets in wanted.values():
                for target in targets:
                    record_error(log, target, error)
            return
        with file, zf:
            members = index_members(zf, file.size, log, max_member_bytes)
            names = {member_of(name): name for name in members}
            by_name = {names.get(key, key): targets for key, targets in wanted.items()}
            copy_members(zf, members, by_name, log, self.retry, f"{self.repo_id}/{path}", before_member=lambda info: fit_read_ahead(file, info))
