"""`DatasetStore`: the one resource that reads and writes ROOT, a local folder or `s3://bucket/prefix`.

Everything under ROOT goes through it: the files of the layout (presence, placing, reading for
checks) and the bookkeeping under ROOT/_encord_assets/ (manifests, rejects, tables, reports,
cooldowns, exhausted lists, archive indexes).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from encord_assets.layout.paths import (
    DEFAULT_AUDIO_DIR,
    KNOWN_SAVE_FOLDERS,
    bookkeeping_key,
    layout_key,
    manifest_key,
    staging_key,
    table_key,
)
from encord_assets.lazy import pl
from encord_assets.settings import DEFAULT_MAX_CLIP_SECONDS, resource_config
from encord_assets.store.backends import LocalBackend, ObjectBackend
from encord_assets.store.staging import fresh_staging_dir


def is_object_url(root: str) -> bool:
    return "://" in root


@functools.lru_cache(maxsize=8)
def object_backend(
    root: str, scratch: Path, part_bytes: int, concurrency: int, attempts: int, region: str, aws: tuple
) -> ObjectBackend:
    """One client per ROOT and AWS environment (`aws`, part of the key only) in a process: runs in
    one process (the demo, sensors) would otherwise each pay for building a botocore client."""
    return ObjectBackend(root, scratch, part_bytes, concurrency, attempts, region)


class DatasetStore(dg.ConfigurableResource):
    """ROOT of the layout, ROOT/<save_folder>/<dir>/<file_name>, and every read and write under it."""

    root: str
    audio_dir: str = DEFAULT_AUDIO_DIR
    # comma-separated save_folder values accepted beyond E-MM1's own
    extra_save_folders: str = ""
    # re-try rows an earlier run found permanently unavailable (404, removed video, ...)
    retry_unavailable: bool = False
    # clip ranges (end_time - start_time) longer than this are rejected as broken rows
    max_clip_seconds: float = DEFAULT_MAX_CLIP_SECONDS
    # object-storage ROOT only: local folder for staging and cached tables (default: in the system temp folder)
    scratch_dir: str = ""
    # object-storage ROOT only: files of two parts or more go in a multipart upload of parts this size
    upload_part_bytes: int = 64 << 20
    upload_concurrency: int = 16
    upload_attempts: int = 8
    # object-storage ROOT only: the bucket's region (empty: botocore's own lookup)
    region: str = ""

    _backend: LocalBackend | ObjectBackend | None = PrivateAttr(default=None)

    @property
    def backend(self) -> LocalBackend | ObjectBackend:
        if self._backend is None:
            if is_object_url(self.root):
                digest = hashlib.sha1(self.root.encode()).hexdigest()[:12]
                scratch = Path(self.scratch_dir or Path(tempfile.gettempdir()) / "encord_assets_scratch").expanduser() / digest
                aws = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
                self._backend = object_backend(
                    self.root, scratch.absolute(), self.upload_part_bytes, self.upload_concurrency, self.upload_attempts, self.region, aws
                )
            else:
                self._backend = LocalBackend(Path(self.root))
        return self._backend

    @property
    def is_local(self) -> bool:
        return not is_object_url(self.root)

    @property
    def save_folders(self) -> tuple[str, ...]:
        extra = tuple(f.strip() for f in self.extra_save_folders.split(",") if f.strip())
        return KNOWN_SAVE_FOLDERS + extra

    def uri(self, key: str) -> str:
        """Where `key` is, for metadata and messages (a path, or an s3:// URL without credentials)."""
        return self.backend.uri(key)

    # --- the layout

    def present(self, targets: list[str]) -> dict[str, int]:
        """Size of each target that is in the layout (non-empty), with one listing per folder."""
        return {target: size for target, (size, _) in self.versions(targets).items()}

    def versions(self, targets: list[str]) -> dict[str, tuple[int, str | None]]:
        """(size, version) of each target in the layout (non-empty), with one listing per folder. The
        version changes whenever the file's bytes may have (a local file's mtime and inode, an
        object's ETag); None when it cannot be trusted yet (a local file modified a moment ago)."""
        by_folder: dict[str, list[str]] = {}
        for target in map(layout_key, targets):
            by_folder.setdefault(target.rsplit("/", 1)[0], []).append(target)
        found = {}
        for folder, wanted in by_folder.items():
            entries = self.backend.entries(folder)
            found.update({t: entries[t] for t in wanted if t in entries and entries[t][0] > 0})
        return found

    def place_all(self, staged: list[dict]) -> list[tuple[str, int] | BaseException]:
        """Move checked staged files (dicts with staged_path, target, bytes, sha256) to their targets:
        (placed | already_present, size on the store) or the error, per file."""
        return self.backend.place_all([(Path(s["staged_path"]), layout_key(s["target"]), s["bytes"], s["sha256"]) for s in staged])

    def sha256(self, target: str) -> str:
        return self.backend.sha256(layout_key(target))

    @contextmanager
    def local_file(self, target: str) -> Iterator[Path]:
        """A local file with the target's bytes (the file itself on a local ROOT, a download otherwise)."""
        with self.backend.local_file(layout_key(target)) as path:
            yield path

    def copy_to(self, target: str, dest: Path) -> str:
        """Put the target's bytes at local path `dest` (which must not exist): a hard link when ROOT is a
        folder on the same filesystem, else a copy or a download. Returns linked, copied or downloaded."""
        return self.backend.copy_out(layout_key(target), Path(dest))

    # --- staging

    def staging_dir(self, asset_name: str, partition_key: str, run_id: str, instance: dg.DagsterInstance) -> tuple[Path, bool]:
        """This run's local staging folder, and whether another run of the partition is in progress."""
        return fresh_staging_dir(self.backend.staging_base() / staging_key(asset_name, partition_key), run_id, instance)

    def abort_abandoned_uploads(self, targets: list[str]) -> int:
        return self.backend.abort_uploads(set(targets))

    # --- bookkeeping under ROOT/_encord_assets/ (and tables an asset places elsewhere under ROOT)

    @staticmethod
    def state_key(*parts: str) -> str:
        """The key of a bookkeeping file under ROOT/_encord_assets/ (fetchers' own state, say)."""
        return bookkeeping_key(*parts)

    def read_bytes(self, key: str) -> bytes | None:
        return self.backend.read_bytes(key)

    def write(self, key: str, write: Callable[[Path], None]) -> None:
        """Write `key` whole: `write(path)` fills a local file that then appears at `key` at once."""
        self.backend.write(key, write)

    def write_bytes(self, key: str, data: bytes) -> None:
        self.write(key, lambda path: Path(path).write_bytes(data))

    def delete(self, key: str) -> None:
        self.backend.delete(key)

    def find(self, prefix: str) -> dict[str, int]:
        """Every key under folder `prefix`, with its size."""
        return self.backend.find(prefix)

    def read_parquet(self, key: str) -> pl.DataFrame | None:
        data = self.read_bytes(key)
        return pl.read_parquet(io.BytesIO(data)) if data is not None else None

    def read_csv(self, key: str) -> pl.DataFrame | None:
        data = self.read_bytes(key)
        return pl.read_csv(io.BytesIO(data), infer_schema=False) if data is not None else None

    def local_tables(self, keys: list[str]) -> list[Path]:
        """Local files holding the parquet tables at `keys` that exist (for lazy scans)."""
        return [path for key in keys if (path := self.backend.cached_copy(key)) is not None]

    def infos_tables(self, modality: str) -> list[Path]:
        """Local files of every split's normalized infos table of `modality` (none before infos_<modality> ran)."""
        keys = [key for key in self.find(bookkeeping_key("tables", f"infos_{modality}")) if key.endswith(".parquet")]
        return self.local_tables(keys)

    def read_table(self, asset_name: str, partition_key: str | None = None) -> pl.DataFrame | None:
        """A table the table IO manager wrote for an asset (an index, say), if there is one."""
        return self.read_parquet(table_key(asset_name, partition_key))

    def read_manifest(self, asset_name: str, partition_key: str) -> pl.DataFrame | None:
        return self.read_parquet(manifest_key(asset_name, partition_key))

    def write_manifest(self, asset_name: str, partition_key: str, manifest: pl.DataFrame) -> None:
        self.write(manifest_key(asset_name, partition_key), manifest.write_parquet)

    def manifests(self) -> list[tuple[str, pl.DataFrame]]:
        """(uri, manifest) of every partition manifest under ROOT."""
        keys = [key for key in self.find(bookkeeping_key("manifests")) if key.endswith(".parquet")]
        return [(self.uri(key), frame) for key in keys if (frame := self.read_parquet(key)) is not None]




def default_store() -> DatasetStore:
    return DatasetStore(**resource_config("store"))
