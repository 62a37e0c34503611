"""Staged files verified while their partition is still fetching, so that the checks after the asset
find them verified: background threads hash each finished staged file and decode-test it with the
`files_decode` check's own test, and the dataset IO manager, once it has placed the files, records
them in the checks' tables of files that passed (`each_changed_file` in `checks.py`)."""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from encord_assets.layout.paths import verified_key
from encord_assets.lazy import pl
from encord_assets.operations.decode import decode_clip, decoder_for, decoding_problem
from encord_assets.store import DatasetStore
from encord_assets.store.backends import RACY_NS, local_version, sha256_of

FILES_MATCH_MANIFEST = "files_match_manifest"
FILES_DECODE = "files_decode"
# two threads: the fetcher's own threads mostly wait on the network, hashing and decoding release the GIL
THREADS = 2
# A staged file's mtime is moved this far into the past before it is read. A write after that
# (by anyone) sets a current mtime, so it can never look unchanged; and the placed file's version
# is trusted at once (it is older than the racy window), so the checks right after can skip it.
BACKDATE_NS = 2 * RACY_NS


def version_column(versions: dict[str, tuple[int, str | None]]) -> "pl.Expr":
    """Each row's file version (column `target`) from `store.versions`: null where none is trusted yet."""
    return pl.col("target").replace_strict({t: v for t, (_, v) in versions.items()}, default=None, return_dtype=pl.String)


def match_basis() -> "pl.Expr":
    """What `files_match_manifest`'s verdict rests on: the manifest's size and sha256."""
    return pl.format("{}:{}", "bytes", "sha256")


def decode_basis(tolerance: float) -> "pl.Expr":
    """What `files_decode`'s verdict rests on: the bytes (sha256), and for a clip with a duration in
    the infos that duration and the tolerance."""
    return (
        pl.when(pl.col("expected_duration").is_null())
        .then(pl.col("sha256"))
        .otherwise(pl.format("{}:{}:{}", "sha256", "expected_duration", pl.lit(tolerance)))
    )


@dataclass(frozen=True)
class Verified:
    """A staged file as it was when it was read: its stat, sha256 and (None for clips, whose test
    needs the infos duration) whether it decodes."""

    size: int
    mtime_ns: int
    inode: int
    sha256: str
    decodes: bool | None

    def unchanged(self, info: os.stat_result) -> bool:
        return (info.st_size, info.st_mtime_ns, info.st_ino) == (self.size, self.mtime_ns, self.inode)

    @property
    def version(self) -> str:
        return local_version(self.size, self.mtime_ns, self.inode)


def verify(path: Path, target: str, modality: str) -> Verified | None:
    """Hash and decode-test one finished staged file; None when it changed while being read (or vanished)."""
    try:
        info = os.stat(path)
        os.utime(path, ns=(info.st_atime_ns, min(info.st_mtime_ns, time.time_ns() - BACKDATE_NS)))
        before = os.stat(path)
        sha256 = sha256_of(path)
        clip = decoder_for(Path(target), modality) is decode_clip
        decodes = None if clip else decoding_problem(path, target, modality) is None
        after = os.stat(path)
    except OSError:
        return None
    found = Verified(before.st_size, before.st_mtime_ns, before.st_ino, sha256, decodes)
    return found if found.unchanged(after) else None


class StagedVerifier:
    """Verifies staged files in background threads as the fetcher hands them to its FetchLedger."""

    def __init__(self, modality: str, threads: int = THREADS):
        self.modality = modality
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="verify-staged")
        self._futures: dict[str, Future] = {}

    def submit(self, target: str, path: Path) -> None:
        self._futures[str(path)] = self._pool.submit(verify, path, target, self.modality)

    def results(self) -> dict[str, Verified]:
        """Each staged path's verification, once every one is done."""
        self._pool.shutdown(wait=True)
        return {path: found for path, future in self._futures.items() if (found := future.result()) is not None}

    def cancel(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def record_placed(store: DatasetStore, asset_name: str, partition_key: str, placed: "pl.DataFrame") -> int:
    """Record placed files (target, bytes, sha256, decodes, staged_version) in the checks' tables of
    files that passed, with the version the checks will read; returns how many. On a local ROOT only
    a file whose version is still the one verified (so it holds the bytes that were read); on object
    storage the object's ETag after the conditional create of those bytes."""
    versions = store.versions(placed["target"].to_list())
    found = placed.with_columns(
        version=version_column(versions),
        expected_duration=pl.lit(None, pl.Float64),  # clips are recorded for the match check only
    ).filter(pl.col("version").is_not_null())
    if store.is_local:
        found = found.filter(pl.col("version") == pl.col("staged_version"))
    for check, rows, basis in (
        (FILES_MATCH_MANIFEST, found, match_basis()),
        (FILES_DECODE, found.filter(pl.col("decodes")), decode_basis(0.0)),  # no duration, so no tolerance in the basis
    ):
        if not rows.height:
            continue
        key = verified_key(check, asset_name, partition_key)
        new = rows.select("target", "version", basis.alias("basis"))
        known = store.read_parquet(key)
        if known is not None:
            new = pl.concat([known.filter(~pl.col("target").is_in(new["target"].to_list())), new])
        store.write(key, new.sort("target").write_parquet)
    return found.height
