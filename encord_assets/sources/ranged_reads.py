"""Read chosen members of a remote zip at the speed of the link.

Given the members a partition needs (from the archive's central directory), neighbouring
members are joined into one range when the gap between them costs less than a round trip,
and the ranges are fetched over several warm connections at once. A member is streamed from
the range's body through its local header to a staging file (stored or deflated, CRC and size
checked), so no archive is ever held in memory. For dense subsets the archive is instead read
once, sequentially, from the first needed member to the end of the last one. `choose` picks
between one GET per member (when the upstream also serves members as files), coalesced ranges
and streaming from the subset's share of bytes and the measured round trip, and says why.
"""

import math
import struct
import threading
import time
import weakref
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol
from urllib.parse import urljoin, urlsplit

import dagster as dg
import requests
import urllib3

from encord_assets.sources.http import CHUNK, HttpStatusError
from encord_assets.sources.retry import RetryPolicy, Unavailable

LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
LOCAL_SIGNATURE = b"PK\x03\x04"
# Planned bytes for a local header's extra field (Unix times, ZIP64 sizes: tens of bytes); a longer
# one is read by one more request, so the plan only has to be right, not exact.
EXTRA_ALLOWANCE = 256
UTF8_FLAG = 0x800
DRAIN_BYTES = 64 << 10
# what one read of a ranged answer asks the socket for
READ_AHEAD = 256 << 10
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10  # real upstreams redirect once or twice (HF: to its CDN); more is a loop
# On the shaped link (benchmarks/shaped_archives.py) one stream was never faster than parallel
# ranges, even at 100%, where the model gives it one round trip: it has to win by more than that.
STREAM_MARGIN = 0.9
# this process's CPU per request (urllib3, headers, a staging file, the ledger; measured ~0.5-1 ms on a
# loaded 2-core machine): serial under the GIL, so with many tiny members it, not the link, bounds ranges
CLIENT_SECONDS_PER_REQUEST = 0.001
# coalesced ranges read at most this share of unneeded bytes between members (fetched <= 1.2x needed)
MAX_WASTE_SHARE = 0.2


METHODS = ("auto", "ranges", "stream")


class RangedReads(dg.ConfigurableResource):
    """How archives are read: parallel connections, the gap worth a round trip, the link's speed.
    Fetchers of archives are such resources (their settings reach these fields)."""

    # "auto": coalesced ranges or one streaming read, chosen per archive from the measured round trip
    method: str = "auto"
    connections: int = 8
    # neighbours closer than this are read in one range. At 200 Mbit/s and 20 ms a round trip is
    # worth ~500 KB of one connection's time, but while one connection waits the other seven use
    # the link, so a new request costs the link ~1/8 of that (measured: benchmarks/shaped_archives.py)
    gap_bytes: int = 64_000
    # the bandwidth the chooser assumes (200 Mbit/s); only the comparison of methods depends on it
    link_bytes_per_second: int = 25_000_000
    timeout_seconds: float = 60.0
    attempts: int = 4
    backoff_seconds: float = 0.5

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.attempts, backoff_seconds=self.backoff_seconds)


@dataclass(frozen=True)
class Member:
    """A needed member as the central directory describes it (the local header is checked against it)."""

    name: str
    header_offset: int
    compress_size: int
    file_size: int
    crc: int
    compress_type: int = zipfile.ZIP_STORED

    @classmethod
    def of(cls, info: zipfile.ZipInfo) -> "Member":
        return cls(info.filename, info.header_offset, info.compress_size, info.file_size, info.CRC, info.compress_type)

    @property
    def planned_end(self) -> int:
        """End (exclusive) of the member's bytes, assuming a short local extra field."""
        return self.header_offset + LOCAL_HEADER.size + len(self.name.encode()) + EXTRA_ALLOWANCE + self.compress_size


@dataclass
class ByteRange:
    start: int
    end: int  # exclusive
    members: list[Member] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.end - self.start


def plan_ranges(members: Iterable[Member], gap_bytes: int, max_range_bytes: int, max_waste_share: float | None = None) -> list[ByteRange]:
    """Members in archive order, joined into ranges when the gap to the previous one is at most
    `gap_bytes` and the range stays under `max_range_bytes` (so that every connection gets work);
    with `max_waste_share`, also only while the unneeded bytes of a range stay under that share of
    its needed ones (small members far apart are not worth reading what lies between them).
    A member overlapping the previous one (a hostile archive) gets a range of its own."""
    ranges: list[ByteRange] = []
    waste = 0
    for member in sorted(members, key=lambda m: (m.header_offset, m.name)):
        last = ranges[-1] if ranges else None
        last_data_end = last and last.members[-1].header_offset + LOCAL_HEADER.size + last.members[-1].compress_size
        gap = member.header_offset - last.end if last else 0
        if (
            last is None
            or member.header_offset < last_data_end
            or gap > gap_bytes
            or member.planned_end - last.start > max_range_bytes
            or (max_waste_share is not None and waste + max(0, gap) > max_waste_share * (last.size - waste + member.planned_end - member.header_offset))
        ):
            ranges.append(ByteRange(member.header_offset, member.planned_end, [member]))
            waste = 0
        else:
            waste += max(0, gap)
            last.end = max(last.end, member.planned_end)
            last.members.append(member)
    return ranges


def plan_parallel(members: Iterable[Member], options: "RangedReads") -> list[ByteRange]:
    """Coalesced ranges of about two per connection at most, so that one slow range leaves no connection
    idle, reading at most MAX_WASTE_SHARE more than the members' own bytes."""
    members = list(members)
    total = sum(m.compress_size for m in members)
    max_range = max(4 * options.gap_bytes, math.ceil(total / (2 * max(1, options.connections))))
    return plan_ranges(members, options.gap_bytes, max_range, MAX_WASTE_SHARE)


class Body(Protocol):
    def read(self, size: int) -> bytes: ...

    def close(self) -> None: ...


class Source(Protocol):
    """Where archive bytes come from: `open(start, end)` answers bytes [start, end) as a stream."""

    def open(self, start: int, end: int) -> Body: ...


class Counter:
    """Requests and bytes received; `listener(nbytes, requests)` (a partition's ledger) hears each as it comes."""

    def __init__(self):
        self.requests = 0
        self.bytes = 0
        self.listener: Callable[[int, int], None] | None = None
        self._lock = threading.Lock()

    def add(self, requests_: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.requests += requests_
            self.bytes += nbytes
        if self.listener is not None:
            self.listener(nbytes, requests_)


class RangeNotHonoured(Exception):
    """The upstream answered a ranged GET with other bytes than asked (transient: a proxy may do this once)."""


class _HttpBody:
    """A ranged answer read ahead in pieces of READ_AHEAD bytes: a member of a few KB is then sliced
    out of memory instead of costing a few socket reads of its own."""

    def __init__(self, response: urllib3.BaseHTTPResponse, counter: Counter, length: int):
        self.response, self.counter, self.remaining = response, counter, length
        self.piece, self.used = b"", 0

    def read(self, size: int) -> bytes:
        if self.used == len(self.piece):
            if not self.remaining:
                return b""
            self.piece, self.used = self.response.read(min(READ_AHEAD, self.remaining), decode_content=False), 0
            self.remaining -= len(self.piece)
            self.counter.add(nbytes=len(self.piece))
        data = self.piece[self.used : self.used + size]
        self.used += len(data)
        return data

    def close(self) -> None:
        # reading a short rest (a planned allowance) keeps the connection warm; a long one is cut
        if self.remaining <= DRAIN_BYTES:
            self.response.drain_conn()
            self.counter.add(nbytes=self.remaining)
        else:
            self.response.close()
        self.response.release_conn()


def _pool_for(url: str, user_agent: str) -> urllib3.PoolManager:
    """A pool of one connection per host, set up from the environment as a requests session would be
    (its CA bundle or REQUESTS_CA_BUNDLE's, the proxy for `url` unless NO_PROXY exempts it)."""
    environment = requests.Session().merge_environment_settings(url, {}, None, None, None)
    verify = environment["verify"]
    ca_certs = verify if isinstance(verify, str) else requests.certs.where()
    options = {"num_pools": 4, "maxsize": 1, "headers": {"User-Agent": user_agent}, "ca_certs": ca_certs, "retries": False}
    proxy = environment["proxies"].get(urlsplit(url).scheme)
    return urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)


class HttpSource:
    """An archive at a URL. Redirects (Hugging Face's /resolve to its CDN) are followed once, not per
    range; `headers` (a token) go to the original host only. Ranges go over urllib3 directly, one
    pool per thread (each connection stays warm across ranges): a requests session costs about a
    millisecond of this process's CPU per request, which bounds reads of members of a few KB."""

    def __init__(self, url: str, timeout_seconds: float = 60.0, headers: dict[str, str] | None = None, user_agent: str = "encord-assets"):
        self.url, self.headers, self.user_agent = url, dict(headers or {}), user_agent
        self.timeout = urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
        self.counter = Counter()
        self._local = threading.local()
        self._resolved: tuple[str, dict[str, str], int] | None = None
        self._lock = threading.Lock()
        self.etag = ""  # the final answer's ETag, once resolved (a revision to cache by)

    def pool(self) -> urllib3.PoolManager:
        if not hasattr(self._local, "pool"):
            self._local.pool = _pool_for(self.url, self.user_agent)
        return self._local.pool

    def _request(self, method: str, url: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        response = self.pool().request(
            method, url, headers=headers, timeout=self.timeout, redirect=False, preload_content=False, decode_content=False
        )
        self.counter.add(requests_=1)
        return response

    def resolve(self) -> tuple[str, dict[str, str], int]:
        """(final URL, headers for it, archive size), by HEAD requests that follow redirects by hand."""
        with self._lock:
            if self._resolved is None:
                url, headers = self.url, self.headers
                for _ in range(MAX_REDIRECTS):
                    response = self._request("HEAD", url, headers)
                    response.release_conn()
                    if response.status in REDIRECTS and "Location" in response.headers:
                        target = urljoin(url, response.headers["Location"])
                        if urlsplit(target).netloc != urlsplit(self.url).netloc:
                            headers = {}
                        url = target
                        continue
                    if response.status >= 400:
                        raise HttpStatusError(response.status, url, response.headers)
                    size = response.headers.get("Content-Length")
                    if size is None:
                        raise RangeNotHonoured(f"{url} announces no size")
                    self._resolved = (url, headers, int(size))
                    self.etag = response.headers.get("ETag", "").strip('"')
                    break
                else:
                    raise Unavailable("redirect_loop", f"{self.url} redirects more than {MAX_REDIRECTS} times")
            return self._resolved

    @property
    def size(self) -> int:
        return self.resolve()[2]

    def open(self, start: int, end: int) -> Body:
        url, headers, size = self.resolve()
        end = min(end, size)
        response = self._request("GET", url, {**headers, "Range": f"bytes={start}-{end - 1}"})
        if response.status >= 400:
            response.close()
            response.release_conn()
            raise HttpStatusError(response.status, url, response.headers)
        expected = f"bytes {start}-{end - 1}/"
        if response.status != 206 or not response.headers.get("Content-Range", "").startswith(expected):
            response.close()
            response.release_conn()
            raise RangeNotHonoured(f"{url} answered {response.status} {response.headers.get('Content-Range')!r} for bytes {start}-{end - 1}")
        return _HttpBody(response, self.counter, end - start)


class _FileBody:
    def __init__(self, file, start: int, end: int, piece_bytes: int, counter: Counter):
        self.file, self.position, self.end, self.piece_bytes, self.counter = file, start, end, piece_bytes, counter
        self.piece, self.used = b"", 0

    def read(self, size: int) -> bytes:
        if self.used == len(self.piece) and self.position < self.end:
            self.file.seek(self.position)
            self.piece, self.used = self.file.read(min(self.piece_bytes, self.end - self.position)), 0
            self.position += len(self.piece)
            self.counter.add(requests_=1, nbytes=len(self.piece))
        data = self.piece[self.used : self.used + size]
        self.used += len(data)
        return data

    def close(self) -> None:
        self.file.close()


class FileSource:
    """An archive behind an fsspec-style opener (HfFileSystem, s3fs, local): each piece of a range is one
    `read` of an unbuffered file, so open it with `cache_type="none"` (or block_size=0) to read only the range."""

    def __init__(self, opener: Callable[[], object], size: int, piece_bytes: int = 8 << 20):
        self.opener, self.size, self.piece_bytes = opener, size, piece_bytes
        self.counter = Counter()

    def open(self, start: int, end: int) -> Body:
        return _FileBody(self.opener(), start, min(end, self.size), self.piece_bytes, self.counter)


class _Reader:
    """A position over the bodies of a range: a read past the planned end (a long extra field) or a body
    cut short asks the source for the rest."""

    def __init__(self, source: Source, start: int, end: int):
        self.source, self.position, self.end = source, start, end
        self.body = source.open(start, end)

    def extend_to(self, end: int) -> None:
        self.end = max(self.end, end)

    def read(self, size: int) -> bytes:
        size = min(size, self.end - self.position)
        if size <= 0:
            return b""
        data = self.body.read(size)
        if not data:
            self.body.close()
            self.body = self.source.open(self.position, self.end)
            data = self.body.read(size)
            if not data:
                raise ConnectionError(f"the upstream sent nothing for bytes {self.position}-{self.end - 1}")
        self.position += len(data)
        return data

    def read_exact(self, size: int) -> bytes:
        parts, missing = [], size
        while missing:
            data = self.read(missing)
            parts.append(data)
            missing -= len(data)
        return b"".join(parts)

    def skip_to(self, offset: int) -> None:
        while self.position < offset:
            self.read(min(CHUNK, offset - self.position))

    def close(self) -> None:
        self.body.close()


def _decompressor(member: Member):
    if member.compress_type == zipfile.ZIP_STORED:
        return None
    if member.compress_type == zipfile.ZIP_DEFLATED:
        return zlib.decompressobj(-15)
    raise Unavailable("unsupported_compression", f"{member.name}: compression method {member.compress_type} is not read by ranges")


def _copy_member(reader: _Reader, member: Member, path: Path) -> None:
    """Read one member at the reader's position (its local header first) into `path`, checking
    name, size and CRC; output is bounded by the central directory's size (no zip bomb gets past it)."""
    reader.skip_to(member.header_offset)
    reader.extend_to(member.header_offset + LOCAL_HEADER.size)
    header = LOCAL_HEADER.unpack(reader.read_exact(LOCAL_HEADER.size))
    signature, flags, name_length, extra_length = header[0], header[2], header[9], header[10]
    if signature != LOCAL_SIGNATURE:
        raise zipfile.BadZipFile(f"{member.name}: no local header at offset {member.header_offset}")
    reader.extend_to(reader.position + name_length + extra_length + member.compress_size)
    raw_name = reader.read_exact(name_length)
    local_name = raw_name.decode("utf-8" if flags & UTF8_FLAG else "cp437", errors="replace")
    reader.read_exact(extra_length)
    decompressor = _decompressor(member)
    if local_name != member.name:
        raise zipfile.BadZipFile(f"the local header at offset {member.header_offset} names {local_name!r}, the central directory {member.name!r}")
    crc, written, remaining = 0, 0, member.compress_size
    with open(path, "wb") as out:
        while remaining:
            data = reader.read(min(CHUNK, remaining))
            remaining -= len(data)
            if decompressor is not None:
                data = decompressor.decompress(data, member.file_size - written + 1)
                if decompressor.unconsumed_tail:
                    raise zipfile.BadZipFile(f"{member.name} inflates past its {member.file_size} bytes")
            written += len(data)
            if written > member.file_size:
                raise zipfile.BadZipFile(f"{member.name} holds more than its {member.file_size} bytes")
            crc = zlib.crc32(data, crc)
            out.write(data)
        if decompressor is not None and decompressor.flush():
            raise zipfile.BadZipFile(f"{member.name} inflates past its {member.file_size} bytes")
    if written != member.file_size or crc != member.crc:
        raise zipfile.BadZipFile(f"{member.name}: {written} bytes with CRC {crc:08x}, the central directory says {member.file_size} and {member.crc:08x}")


@dataclass
class Fetched:
    """What a read produced: a staged file per member, or its error; and what it cost."""

    method: str
    staged: dict[str, Path] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    ranges: int = 0
    requests: int = 0
    bytes: int = 0


def _refusal(member: Member, archive_size: int, max_member_bytes: int) -> BaseException | None:
    if member.header_offset < 0 or member.header_offset + member.compress_size > archive_size:
        return zipfile.BadZipFile(f"{member.name}: {member.compress_size} bytes at offset {member.header_offset} lie beyond the {archive_size}-byte archive")
    if member.file_size > max_member_bytes:
        return Unavailable("too_large", f"{member.name} claims {member.file_size} bytes, over the {max_member_bytes}-byte limit")
    return None


def fetch_members(
    source: Source,
    members: Iterable[Member],
    archive_size: int,
    new_path: Callable[[], Path],
    options: RangedReads,
    stream: bool = False,
    max_member_bytes: int = 1 << 30,
    on_done: Callable[[Member, Path | BaseException], None] | None = None,
) -> Fetched:
    """Stage `members` into files from `new_path()`: coalesced ranges over `options.connections`
    connections, or (`stream`) one sequential read from the first needed member to the end of the
    last. A failed request is retried from the first member not yet staged; a member whose bytes are
    wrong (CRC, size, header) gets its error and the others go on. `on_done(member, path or error)`
    hears each member's outcome as soon as it is known (once per member)."""
    counter_before = (source.counter.requests, source.counter.bytes)
    fetched = Fetched("stream" if stream else "ranges")
    lock = threading.Lock()

    def settle(member: Member, result: Path | BaseException) -> None:
        with lock:
            if member.name in fetched.staged or member.name in fetched.errors:
                return
            if isinstance(result, BaseException):
                fetched.errors[member.name] = result
            else:
                fetched.staged[member.name] = result
        if on_done is not None:
            on_done(member, result)

    readable = []
    for member in members:
        if (refused := _refusal(member, archive_size, max_member_bytes)) is not None:
            settle(member, refused)
        else:
            readable.append(member)
    if stream:
        ranges = plan_ranges(readable, gap_bytes=archive_size, max_range_bytes=archive_size + (1 << 40))
    else:
        ranges = plan_parallel(readable, options)
    fetched.ranges = len(ranges)

    def read_range(byte_range: ByteRange) -> None:
        pending = list(byte_range.members)

        def attempt() -> None:
            reader = _Reader(source, pending[0].header_offset, byte_range.end)
            try:
                while pending:
                    member, path = pending[0], new_path()
                    try:
                        _copy_member(reader, member, path)
                    except (zipfile.BadZipFile, Unavailable, zlib.error) as error:
                        path.unlink(missing_ok=True)
                        settle(member, error)
                    except BaseException:
                        path.unlink(missing_ok=True)
                        raise
                    else:
                        settle(member, path)
                    pending.pop(0)
            finally:
                reader.close()

        try:
            options.retry.call(attempt)
        except Exception as error:  # noqa: BLE001 - every member gets an outcome
            for member in pending:
                settle(member, error)

    workers = 1 if stream else max(1, min(options.connections, len(ranges)))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(read_range, ranges))
    fetched.requests = source.counter.requests - counter_before[0]
    fetched.bytes = source.counter.bytes - counter_before[1]
    return fetched


_ROUND_TRIPS: "weakref.WeakKeyDictionary[Source, float]" = weakref.WeakKeyDictionary()


def measure_rtt(source: Source, samples: int = 1) -> float:
    """Seconds of the fastest one-byte ranged read: a warm connection's round trip, as every caller has
    resolved the archive (or read its end) on this thread's connection first. Measured once per
    source: a choice made before the central directory and the one after it share it."""
    if source in _ROUND_TRIPS:
        return _ROUND_TRIPS[source]
    best = math.inf
    for _ in range(samples):
        started = time.monotonic()
        body = source.open(0, 1)
        body.read(1)
        body.close()
        best = min(best, time.monotonic() - started)
    _ROUND_TRIPS[source] = best
    return best


@dataclass(frozen=True)
class Choice:
    method: str  # "single", "ranges" or "stream"
    reason: str
    estimates: dict[str, float]


def choose(
    members: list[Member],
    archive_size: int,
    rtt_seconds: float,
    options: RangedReads,
    single_gets: bool = False,
    index_bytes: int = 0,
) -> Choice:
    """The fastest way to read `members`, from a model of the link: each request costs a round trip,
    shared by `options.connections` connections, or CLIENT_SECONDS_PER_REQUEST of this process's CPU
    when that is more (many requests of a few KB), and every byte read costs 1/bandwidth. `single_gets`:
    the upstream also serves each member as its own file (then no central directory of `index_bytes`
    has to be read)."""
    rate = float(options.link_bytes_per_second)
    connections = max(1, options.connections)
    needed = sum(m.compress_size for m in members)
    if not members:
        return Choice("ranges", "no member is needed", {})
    index_cost = (index_bytes / rate + rtt_seconds) if index_bytes else 0.0
    ranges = plan_parallel(members, options)

    def waits(requests_: int) -> float:
        return max(math.ceil(requests_ / connections) * rtt_seconds, requests_ * CLIENT_SECONDS_PER_REQUEST)

    estimates = {
        "ranges": index_cost + waits(len(ranges)) + sum(r.size for r in ranges) / rate,
        "stream": index_cost + rtt_seconds + (max(m.planned_end for m in members) - min(m.header_offset for m in members)) / rate,
    }
    if single_gets:
        estimates["single"] = waits(len(members)) + sum(m.file_size for m in members) / rate
    method = min(estimates, key=estimates.get)
    if method == "stream" and estimates["stream"] > STREAM_MARGIN * estimates["ranges"]:
        method = "ranges"
    share = needed / archive_size if archive_size else 1.0
    others = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in estimates.items() if name != method)
    reason = (
        f"{len(members)} members, {share:.1%} of the archive's bytes, round trip {rtt_seconds * 1000:.0f} ms: "
        f"{method} estimated {estimates[method]:.2f} s ({others})"
    )
    return Choice(method, reason, estimates)


def check_method(method: str, methods: tuple[str, ...] = METHODS) -> None:
    """A configuration error, raised before any request (it is not worth a retry)."""
    if method not in methods:
        raise ValueError(f"unknown read method {method!r}: choose from {', '.join(methods)}")


def pick(source: Source, members: list[Member], archive_size: int, options: RangedReads) -> Choice:
    """The configured method, or (`auto`) the one `choose` estimates fastest from a measured round trip."""
    check_method(options.method)
    if options.method != "auto":
        return Choice(options.method, f"{len(members)} members, method {options.method} set by configuration", {})
    if not members:
        return Choice("ranges", "no member is needed", {})
    return choose(members, archive_size, measure_rtt(source), options)
