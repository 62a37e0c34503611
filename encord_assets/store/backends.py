"""Where ROOT's bytes live: a local folder, or an S3-compatible bucket through s3fs.

Keys are '/'-separated paths relative to ROOT, already checked by the store.
"""

import asyncio
import base64
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from encord_assets.layout.paths import UnsafePath, write_atomically
from encord_assets.ledger import Outcome

# a file modified this recently has no version yet: coarse filesystem clocks tick every few ms
RACY_NS = 2_000_000_000
PLACED = Outcome.PLACED.value
ALREADY_PRESENT = Outcome.ALREADY_PRESENT.value


def sha256_of(path: Path | str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def local_version(size: int, mtime_ns: int, inode: int) -> str:
    """A local file's version: it changes when the file is rewritten or replaced."""
    return f"{size}:{mtime_ns}:{inode}"


class LocalBackend:
    """ROOT is a folder: placing is a rename from staging on the same filesystem."""

    local = True

    def __init__(self, root: Path):
        self.root = root.expanduser().absolute()

    def uri(self, key: str) -> str:
        return str(self.root / key)

    def _path(self, key: str, root: Path | None = None) -> Path:
        root = root or self.root.resolve()
        path = root / key
        # resolve() follows symlinks a user or an attacker may have left inside ROOT.
        if not path.resolve().is_relative_to(root):
            raise UnsafePath(f"{key!r} resolves outside the dataset layout under {root}")
        return path

    def entries(self, prefix: str) -> dict[str, tuple[int, str | None]]:
        """(size, version) of every file directly under folder `prefix` (one directory listing).

        The version (size, mtime, inode) changes when the file is rewritten or replaced. It is None
        while the file's mtime is within the filesystem clock's coarseness of now: a rewrite in the
        same tick would keep the same mtime (git's "racy clean" case)."""
        folder = self.root / prefix
        found = {}
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return found
        settled = time.time_ns() - RACY_NS
        for entry in entries:
            key = f"{prefix}/{entry.name}"
            try:
                if entry.is_file() and (not entry.is_symlink() or self._path(key)):
                    stat = entry.stat()
                    version = local_version(stat.st_size, stat.st_mtime_ns, stat.st_ino) if stat.st_mtime_ns < settled else None
                    found[key] = (stat.st_size, version)
            except (OSError, UnsafePath):
                continue
        return found

    def find(self, prefix: str) -> dict[str, int]:
        folder = self.root / prefix
        if not folder.is_dir():
            return {}
        return {p.relative_to(self.root).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, key: str, write: Callable[[Path], None]) -> None:
        write_atomically(self.root / key, write)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def place_all(self, items: list[tuple[Path, str, int, str]]) -> list[tuple[str, int] | BaseException]:
        """Rename each staged file into place. A partition places thousands of files into a few
        folders: each folder is created and checked to resolve inside ROOT once, and the file
        name is a single checked component, so `folder/name` needs no resolving of its own
        (a rename replaces a symlink at the final path, it does not follow it)."""
        root = self.root.resolve()
        folders: dict[str, str | BaseException] = {}
        results = []
        for staged, key, size, _ in items:
            parent, _, name = key.rpartition("/")
            if parent not in folders:
                try:
                    folder = self._path(parent, root)
                    folder.mkdir(parents=True, exist_ok=True)
                    folders[parent] = str(folder)
                except (OSError, UnsafePath) as error:
                    folders[parent] = error
            folder = folders[parent]
            if isinstance(folder, BaseException):
                results.append(folder)
                continue
            try:
                os.replace(staged, f"{folder}/{name}")
                results.append((PLACED, size))
            except OSError as error:
                results.append(error)
        return results

    @contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        yield self._path(key)

    def sha256(self, key: str) -> str:
        return sha256_of(self._path(key))

    def copy_out(self, key: str, dest: Path) -> str:
        source = self._path(key)
        try:
            os.link(source, dest)
            return "linked"
        except OSError:
            # another filesystem, or one without hard links
            shutil.copyfile(source, dest)
            return "copied"

    def staging_base(self) -> Path:
        return self.root

    def cached_copy(self, key: str) -> Path | None:
        path = self.root / key
        return path if path.is_file() else None

    def abort_uploads(self, keys: set[str]) -> int:
        return 0


class ObjectBackend:
    """ROOT is `s3://bucket/prefix`: endpoint, region and credentials come the standard AWS way
    (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws).

    A placed object is written straight from local staging by one conditional create
    (`If-None-Match: *`): it appears whole or not at all, and never overwrites another
    writer's object. Files under two parts go in one PUT carrying their SHA-256
    (`x-amz-checksum-sha256`, which S3 checks); larger ones in a multipart upload whose parts
    botocore checksums, aborted when it fails.
    """

    local = False

    def __init__(self, url: str, scratch: Path, part_bytes: int, concurrency: int, attempts: int, region: str = ""):
        import s3fs

        scheme, _, rest = url.partition("://")
        if scheme != "s3":
            raise ValueError(f"ROOT_DATA_PATH {url!r}: only local paths and s3:// URLs are supported")
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/")
        self.scratch = scratch
        self.part_bytes = part_bytes
        self.concurrency = concurrency
        client = {"region_name": region} if region else {}
        # botocore's standard retry mode backs off on 503 SlowDown, throttling, resets and timeouts
        self.fs = s3fs.S3FileSystem(
            use_listings_cache=False,
            client_kwargs=client,
            config_kwargs={"retries": {"max_attempts": attempts, "mode": "standard"}},
            skip_instance_cache=True,
        )

    def _path(self, key: str) -> str:
        return "/".join(p for p in (self.bucket, self.prefix, key) if p)

    def _key_of(self, path: str) -> str:
        """The S3 object key of a bucket/key path."""
        return path.removeprefix(f"{self.bucket}/")

    def _key(self, path: str) -> str:
        return path.removeprefix(self._path("")).lstrip("/")

    def uri(self, key: str) -> str:
        return f"s3://{self._path(key)}"

    def entries(self, prefix: str) -> dict[str, tuple[int, str | None]]:
        """(size, version) per object directly under `prefix`: the listing's ETag, which a new PUT of
        other bytes changes."""
        try:
            entries = self.fs.ls(self._path(prefix), detail=True, refresh=True)
        except FileNotFoundError:
            return {}
        return {self._key(e["name"]): (e["size"], f"{e['size']}:{e.get('ETag', '')}" if e.get("ETag") else None) for e in entries if e["type"] == "file"}

    def find(self, prefix: str) -> dict[str, int]:
        found = self.fs.find(self._path(prefix), detail=True)
        return {self._key(name): info["size"] for name, info in sorted(found.items()) if info["type"] == "file"}

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None

    def write(self, key: str, write: Callable[[Path], None]) -> None:
        """Bookkeeping files: written locally, then one PUT (an object appears whole)."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.scratch) as folder:
            tmp = Path(folder) / Path(key).name
            write(tmp)
            self.fs.put_file(str(tmp), self._path(key))

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass

    async def _place(self, staged: Path, key: str, size: int, sha256: str) -> tuple[str, int]:
        path = self._path(key)
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        extra = {"ChecksumSHA256": checksum} if size < 2 * self.part_bytes else {}
        try:
            await self.fs._put_file(str(staged), path, mode="create", chunksize=self.part_bytes, **extra)
        except (FileExistsError, FileNotFoundError) as error:
            # 412: an object is there: another writer's, or ours when a retried PUT had landed
            # before its response was lost; the checksum S3 keeps tells which. NoSuchUpload: a
            # writer that completed the key first cleared the other uploads to it.
            try:
                head = await self.fs._call_s3("head_object", Bucket=self.bucket, Key=self._key_of(path), ChecksumMode="ENABLED")
            except FileNotFoundError:
                raise error from None
            found = int(head["ContentLength"])
            if found == size and "ChecksumSHA256" not in head:  # a server that keeps no checksum: hash the bytes
                ours = await asyncio.to_thread(self.sha256, key) == sha256
            else:
                ours = found == size and head["ChecksumSHA256"] == checksum
            return (PLACED if ours else ALREADY_PRESENT), found
        staged.unlink(missing_ok=True)
        return PLACED, size

    def place(self, staged: Path, key: str, size: int, sha256: str) -> tuple[str, int]:
        (result,) = self.place_all([(staged, key, size, sha256)])
        if isinstance(result, BaseException):
            raise result
        return result

    def place_all(self, items: list[tuple[Path, str, int, str]]) -> list[tuple[str, int] | BaseException]:
        """Upload every staged file, `concurrency` at a time on s3fs's event loop."""
        from fsspec.asyn import sync

        async def run():
            gate = asyncio.Semaphore(self.concurrency)

            async def one(item):
                async with gate:
                    return await self._place(*item)

            return await asyncio.gather(*(one(item) for item in items), return_exceptions=True)

        results = sync(self.fs.loop, run)
        # a CreateMultipartUpload whose response was lost was retried: the first upload is an orphan
        done = {key for (_, key, size, _), result in zip(items, results) if size >= 2 * self.part_bytes and not isinstance(result, BaseException)}
        if done:
            self.abort_uploads(done)
        return results

    @contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        self.scratch.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=self.scratch))
        try:
            path = folder / Path(key).name
            self.fs.get_file(self._path(key), str(path))
            yield path
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(self._path(key), "rb", block_size=8 << 20) as f:
            while chunk := f.read(8 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def staging_base(self) -> Path:
        return self.scratch

    def cached_copy(self, key: str) -> Path | None:
        """A local copy of `key`, downloaded again only when its ETag changed."""
        try:
            info = self.fs.info(self._path(key), refresh=True)
        except FileNotFoundError:
            return None
        tag = hashlib.sha1(f"{key}\0{info.get('ETag', '')}\0{info['size']}".encode()).hexdigest()
        path = self.scratch / "cache" / f"{tag}{Path(key).suffix}"
        if not path.is_file():
            write_atomically(path, lambda tmp: self.fs.get_file(self._path(key), str(tmp)))
        return path

    def copy_out(self, key: str, dest: Path) -> str:
        self.fs.get_file(self._path(key), str(dest))
        return "downloaded"

    def abort_uploads(self, keys: set[str]) -> int:
        """Abort multipart uploads to `keys` left by runs that were killed mid-upload."""
        aborted = 0
        for prefix in sorted({key.rsplit("/", 1)[0] for key in keys}):
            options = {"Bucket": self.bucket, "Prefix": self._key_of(self._path(prefix)) + "/"}
            while True:
                page = self.fs.call_s3("list_multipart_uploads", **options)
                for upload in page.get("Uploads", []):
                    if self._key(f"{self.bucket}/{upload['Key']}") in keys:
                        self.fs.call_s3("abort_multipart_upload", Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                        aborted += 1
                if not page.get("IsTruncated"):
                    break
                options.update(KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"])
        return aborted
