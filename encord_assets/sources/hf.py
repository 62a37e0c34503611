"""Ranged reads of files in Hugging Face dataset repositories, through huggingface_hub.

`HfDatasetSource` is the base of every fetcher that reads a dataset repository: it builds
an `HfFileSystem` for its own endpoint and token (passed explicitly, never read from the
environment at import, and never logged), resolves its pinned revision to a commit, lists
files, and opens them at that commit with no read-ahead (`cache_type="none"`: only the bytes
pyarrow asks for) while counting every byte received into the partition's FetchLedger. A zip
is read from the file's URL, its `/resolve` redirect followed once (`remote_archive`): remotezip
reads the central directory (two ranged GETs at the CDN), and
`stage_zip_members` then fetches the needed members by `ranged_reads` over parallel connections.
"""

from __future__ import annotations

import fnmatch
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable

import dagster as dg

from encord_assets.lazy import pl
from encord_assets.ledger import FetchLedger
from encord_assets.settings import DEFAULT_HF_ENDPOINT
from encord_assets.sources.http import new_session
from encord_assets.sources.ranged_reads import HttpSource, RangedReads
from encord_assets.sources.retry import Unavailable, record_error
from encord_assets.sources.zip_members import index_members, remote_zip, stage_members

if TYPE_CHECKING:  # huggingface_hub loads when a fetcher first uses it, not with the code location
    import remotezip
    from huggingface_hub import HfApi, HfFileSystem

COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def hf_url(repo_id: str, revision: str, path: str = "") -> str:
    """`hf://datasets/ORG/NAME@REV/PATH`, the path HfFileSystem resolves."""
    return f"hf://datasets/{repo_id}@{revision}/{path}".rstrip("/")


def stem_of(member: str) -> str:
    """`a/b/<stem>.jpg` -> `<stem>`: upstream files are named by the id E-MM1 calls file_id."""
    return PurePosixPath(member).name.split(".", 1)[0]


def targets_by(rows: pl.DataFrame, column: str = "file_id") -> dict[str, list[str]]:
    """`column` value -> the targets (one or more save folders) that want it."""
    wanted: dict[str, list[str]] = {}
    for key, target in rows.select(column, "target").iter_rows():
        wanted.setdefault(key, []).append(target)
    return wanted


def count_reads(file, log: FetchLedger | None):
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


class HfDatasetSource(RangedReads):
    """A dataset repository on the Hugging Face Hub (or anything that speaks its API)."""

    repo_id: str
    endpoint: str = DEFAULT_HF_ENDPOINT
    # secret: sent to the endpoint only, never logged or stored
    token: str | None = None
    # a branch, tag or commit; a commit sha makes runs reproducible
    revision: str = "main"
    # files indexed (or zips read) at once
    threads: int = 4

    def filesystem(self) -> "HfFileSystem":
        from huggingface_hub import HfFileSystem

        # token=False, not None: never fall back to a token saved on this machine
        return HfFileSystem(endpoint=self.endpoint.rstrip("/"), token=self.token or False, skip_instance_cache=True)

    def api(self) -> "HfApi":
        from huggingface_hub import HfApi

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

    def open(self, fs: "HfFileSystem", commit: str, path: str, size: int | None, log: FetchLedger | None, **options):
        """Open `path` at `commit` for ranged reads; a missing file is `Unavailable`."""
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

        try:
            file = fs.open(hf_url(self.repo_id, commit, path), "rb", size=size, **options)
        except (FileNotFoundError, EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError) as error:
            raise Unavailable("not_found", f"{self.repo_id}@{commit}: {path} not found ({type(error).__name__})") from None
        return count_reads(file, log)

    def index_files(
        self,
        context: dg.AssetExecutionContext,
        revision: str,
        what: str,
        read: Callable[[str, int, FetchLedger], pl.DataFrame],
        schema: dict,
    ) -> tuple[pl.DataFrame, dict]:
        """An index over every file of `self.files`: `read(path, size, counter)` indexes one file,
        counting what it fetches into `counter`; files in parallel, each retried on its own."""
        files = self.list_files(revision, self.files)
        counter = FetchLedger(Path())  # counts bytes only; stages nothing
        context.log.info(f"indexing {what} of {len(files)} files of {self.repo_id}@{revision}")

        def index_file(item: tuple[str, int]) -> pl.DataFrame:
            path, size = item
            return self.retry.call(lambda: read(path, size, counter))

        with ThreadPoolExecutor(self.threads) as pool:
            frames = list(pool.map(index_file, files))
        index = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
        metadata = {"files": len(files), "bytes_fetched": counter.bytes_fetched, "requests": counter.requests}
        return index.unique("file_id", keep="first", maintain_order=True), metadata

    def check_index(self, index: pl.DataFrame) -> str:
        """The commit an index was built at; refuse one built at another pinned commit."""
        commits = index["revision"].unique().to_list() if index.height else [self.index_revision()]
        if COMMIT_SHA.match(self.revision) and commits != [self.revision]:
            raise dg.Failure(
                f"the index was built at {commits}, the revision setting is {self.revision}: materialize the index asset again"
            )
        return commits[0]

    def look_up(self, rows: pl.DataFrame, index: pl.LazyFrame, log: FetchLedger, where: str) -> tuple[dict, pl.DataFrame, str]:
        """The rows' targets by file id, the index entries holding them, and the commit to read at;
        an id in no file of the index is recorded unavailable (`not_in_repo`)."""
        wanted = targets_by(rows)
        found = index.filter(pl.col("file_id").is_in(list(wanted))).collect()
        commit = self.check_index(found if found.height else index.head(1).collect())
        for file_id in wanted.keys() - set(found["file_id"]):
            for target in wanted[file_id]:
                log.unavailable(target, "not_in_repo", f"{file_id} is in no {where} of {self.repo_id}@{commit}")
        return wanted, found, commit

    def http_source(self, commit: str, path: str) -> HttpSource:
        """The file's download URL (`/resolve`, redirected to a CDN for large files), for ranged reads."""
        from huggingface_hub import hf_hub_url

        url = hf_hub_url(self.repo_id, path, repo_type="dataset", revision=commit, endpoint=self.endpoint.rstrip("/"))
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return HttpSource(url, self.timeout_seconds, headers)

    def remote_archive(self, commit: str, path: str, log: FetchLedger) -> tuple[HttpSource, "remotezip.RemoteZip"]:
        """Zip `path` at `commit`: its source for ranged reads (the `/resolve` redirect followed once,
        every request counted into `log`) and its central directory, read by remotezip at the CDN."""
        source = self.http_source(commit, path)
        source.counter.listener = log.fetched
        url, headers, _ = source.resolve()
        return source, remote_zip(url, new_session("encord-assets"), log, self.timeout_seconds, headers)

    def stage_zip_members(self, commit: str, path: str, wanted: dict[str, list[str]], log: FetchLedger, max_member_bytes: int) -> None:
        """Stage the members of zip `path` whose stem is a key of `wanted` (key -> targets): the
        central directory by remotezip at the redirected URL, then the members by ranged reads.
        Every target gets an outcome."""
        try:
            source, zf = self.retry.call(lambda: self.remote_archive(commit, path, log))
        except Exception as error:  # noqa: BLE001 - the archive itself failed: every row says why
            record_error(log, [t for targets in wanted.values() for t in targets], error)
            return
        with zf:
            members = index_members(zf, source.size, log, max_member_bytes)
        names = {stem_of(name): name for name in members}
        by_name = {names.get(key, key): targets for key, targets in wanted.items()}
        stage_members(source, source.size, members, by_name, log, self, f"{self.repo_id}/{path}")
