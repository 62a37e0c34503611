"""Property-based: hostile zip central directories, tar headers and HTTP bodies.

Generated archives have members named `..`, absolute, with drive letters, NUL or very long names,
links and devices; their headers lie about sizes and offsets (overlapping members, members past
the end), and the bytes are truncated or padded. Whatever they hold: every wanted target gets one
outcome, nothing is written outside staging, every staged file is whole (its size as recorded,
within the limit) and nothing partial is left beside them, and memory stays bounded by the limit,
not by what the headers claim. Examples come from a fixed seed, in a bounded number.
"""

import contextlib
import gzip
import io
import random
import socketserver
import stat
import struct
import tarfile
import tempfile
import threading
import tracemalloc
import urllib.request
import warnings
import zipfile
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from encord_assets.ledger import FetchLedger
from encord_assets.sources.address_policy import AddressPolicy, VettingProxy
from encord_assets.sources.http import download, new_session
from encord_assets.sources.openshape import npy_key
from encord_assets.sources.retry import Unavailable
from encord_assets.sources.tar_members import stage_members
from encord_assets.sources.ranged_reads import FileSource, RangedReads
from encord_assets.sources import zip_members
from encord_assets_tests.fuzz import FUZZ

LIMIT = 48 << 10
MEMORY_BOUND = 8 << 20  # members and bodies are read in chunks: far below what headers claim (4 GB)
NAMES = st.sampled_from(
    ["a.npy", "dir/b.npy", "deep/er/c.npy", "../up.npy", "a/../../up2.npy", "/abs.npy", "C:\\drive.npy", "C:/drive2.npy",
     "back\\slash.npy", "./dot.npy", "ünï/cödé.npy", "x" * 300 + ".npy", "d" * 120 + "/" + "e" * 120 + ".npy", "", "dir/"]
) | st.text(min_size=1, max_size=10).map(lambda s: s + ".npy")
SIZES = st.sampled_from([0, 1, 100, LIMIT - 1, LIMIT, LIMIT + 1, 3 * LIMIT])


def check_staging(folder: Path, staging: Path, log: FetchLedger, wanted_targets: set[str], limit: int) -> None:
    results = log.results()
    assert set(results["target"]) <= wanted_targets
    staged = {}
    for row in results.filter(results["outcome"] == "staged").iter_rows(named=True):
        path = Path(row["staged_path"])
        assert path.is_relative_to(staging)
        assert path.stat().st_size == row["expected_size"] <= limit, row
        staged[path] = row
    written = [p for p in folder.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(staging) for p in written), written
    assert set(p for p in written) == set(staged), "a partial or unrecorded file was left in staging"


@contextlib.contextmanager
def staged_within_bounds(targets: set[str]):
    """A FetchLedger over a fresh staging folder; on leaving: memory stayed under the bound, and
    staging holds exactly the whole files the log recorded, for wanted targets only."""
    with tempfile.TemporaryDirectory() as folder:
        staging = Path(folder) / "staging"
        log = FetchLedger(staging)
        tracemalloc.start()
        try:
            yield log
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < MEMORY_BOUND
        check_staging(Path(folder), staging, log, targets, LIMIT)


# ---- zip central directories ----

CENTRAL = b"PK\x01\x02"


@st.composite
def hostile_zip(draw) -> tuple[bytes, list[str]]:
    members = draw(st.lists(st.tuples(NAMES, SIZES, st.booleans(), st.booleans()), min_size=1, max_size=6))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are part of the hostility
        for name, size, deflate, link in members:
            info = zipfile.ZipInfo(name or "empty")
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            if link:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, b"\x00" * size)
    data = bytearray(buffer.getvalue())
    entries = [i for i in range(len(data)) if data[i : i + 4] == CENTRAL]
    offsets = [struct.unpack_from("<I", data, e + 42)[0] for e in entries]
    for entry in entries:
        lie = draw(st.sampled_from(["none", "none", "csize", "usize", "both", "offset", "overlap", "crc", "nul"]))
        huge = draw(st.sampled_from([0, 1, LIMIT * 4, 2**31, 2**32 - 1]))
        if lie in ("csize", "both"):
            struct.pack_into("<I", data, entry + 20, huge)
        if lie in ("usize", "both"):
            struct.pack_into("<I", data, entry + 24, huge)
        if lie == "offset":
            struct.pack_into("<I", data, entry + 42, huge)
        if lie == "overlap":
            struct.pack_into("<I", data, entry + 42, draw(st.sampled_from(offsets)))
        if lie == "crc":
            struct.pack_into("<I", data, entry + 16, draw(st.integers(0, 2**32 - 1)))
        if lie == "nul" and struct.unpack_from("<H", data, entry + 28)[0]:
            data[entry + 46] = 0
    cut = draw(st.sampled_from([None, None, None, "truncate", "pad"]))
    if cut == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif cut == "pad":
        data += b"\x00" * draw(st.integers(1, 64))
    names = [name or "empty" for name, *_ in members]
    return bytes(data), names


# (archive bytes, member names) hypothesis found, each once a bug
ZIP_CORPUS = [
    # a central directory name starting with NUL reads as "": ZipInfo.is_dir() raised IndexError
    # and took the whole archive's rows down
    (
        b"PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00!\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00a.npy"
        b"PK\x01\x02\x14\x03\x14\x00\x00\x00\x00\x00\x00\x00!\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00"
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x80\x01\x00\x00\x00\x00\x00.npyPK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x003\x00\x00\x00#\x00\x00\x00\x00\x00",
        ["a.npy"],
    ),
]


@pytest.mark.parametrize(("data", "names"), ZIP_CORPUS)
def test_zip_corpus(data, names):
    check_zip(data, names)


@FUZZ
@given(hostile_zip())
def test_hostile_zips_are_refused_or_bounded(generated):
    check_zip(*generated)


def check_zip(data: bytes, names: list[str]) -> None:
    wanted = {name: [f"shared/points/{i}.npy"] for i, name in enumerate(dict.fromkeys(names))}
    wanted["not-there.npy"] = ["shared/points/missing.npy"]
    targets = {t for ts in wanted.values() for t in ts}
    with staged_within_bounds(targets) as log:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except Exception:  # noqa: BLE001 - an archive that cannot be opened fails all its rows (the fetchers' rule)
            return
        with archive:
            members = zip_members.index_members(archive, len(data), log, LIMIT)
        # the members as the fetchers read them: ranges of the archive's bytes, parsed by ranged_reads
        source = FileSource(lambda: io.BytesIO(data), len(data))
        zip_members.stage_members(source, len(data), members, wanted, log, RangedReads(method="ranges", attempts=1, connections=2), "fuzz.zip")
    assert set(log.results()["target"]) == targets, "every wanted target gets one outcome"


# ---- tar headers ----

TAR_TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE])


@st.composite
def hostile_tar(draw) -> tuple[bytes, list[str]]:
    members = draw(st.lists(st.tuples(NAMES, SIZES, TAR_TYPES), min_size=1, max_size=6))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=draw(st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))) as archive:
        for name, size, kind in members:
            info = tarfile.TarInfo(name or "empty")
            info.type = kind
            info.linkname = "../../etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            info.size = size if kind == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(b"\x01" * info.size) if kind == tarfile.REGTYPE else None)
    data = bytearray(buffer.getvalue())
    headers = [i for i in range(0, len(data) - 512, 512) if data[i + 257 : i + 262] == b"ustar"]
    for header in headers:
        if draw(st.integers(0, 3)) == 0:  # a size field that lies (checksum fixed, so tarfile believes it)
            data[header + 124 : header + 136] = b"%011o\x00" % draw(st.sampled_from([0, 1, LIMIT * 4, 8**11 - 1]))
            data[header + 148 : header + 156] = b" " * 8
            data[header + 148 : header + 156] = b"%06o\x00 " % sum(data[header : header + 512])
        if draw(st.integers(0, 9)) == 0:
            data[header + draw(st.integers(0, 99))] = 0  # NUL inside the name
    compressed = gzip.compress(bytes(data), compresslevel=1)
    if draw(st.booleans()):
        compressed = compressed[: draw(st.integers(0, len(compressed)))]
    return compressed, [name for name, *_ in members]


def tar_cut_inside_a_member() -> tuple[bytes, list[str]]:
    """Found by hypothesis: a stream that ends inside a wanted member left its partial file in staging."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("a.npy")
        info.size = LIMIT
        archive.addfile(info, io.BytesIO(random.Random(0).randbytes(info.size)))  # incompressible
    compressed = gzip.compress(buffer.getvalue())
    return compressed[: len(compressed) // 2], ["a.npy"]


@pytest.mark.parametrize(("data", "names"), [tar_cut_inside_a_member()])
def test_tar_corpus(data, names):
    check_tar(data, names)


@FUZZ
@given(hostile_tar())
def test_hostile_tars_are_refused_or_bounded(generated):
    check_tar(*generated)


def check_tar(data: bytes, names: list[str]) -> None:
    keys = {npy_key(name) for name in names} - {None}
    wanted = {key: [f"shared/points/{i}.npy"] for i, key in enumerate(sorted(keys))}
    with staged_within_bounds({t for ts in wanted.values() for t in ts}) as log:
        try:
            stage_members(io.BytesIO(data), dict(wanted), log, npy_key, LIMIT)
        except (tarfile.TarError, EOFError, OSError, ValueError):
            pass  # a broken stream fails the rows not yet found (the fetcher's rule)


# ---- HTTP bodies: lying Content-Length, lying chunks, truncated and oversized bodies ----


class _Answer(socketserver.StreamRequestHandler):
    def handle(self):
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass
        with contextlib.suppress(OSError):
            self.wfile.write(self.server.answer)


@pytest.fixture(scope="module")
def raw_server():
    """Answers every request on 127.0.0.1 with the bytes in `.answer`, then hangs up."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Answer)
    server.daemon_threads = True
    server.answer = b""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@st.composite
def hostile_answer(draw) -> bytes:
    size = draw(st.sampled_from([0, 1, LIMIT - 1, LIMIT, LIMIT + 1, 3 * LIMIT]) | st.integers(0, 3 * LIMIT))
    body = b"\xab" * size
    status = draw(st.sampled_from([b"200 OK", b"200 OK", b"200 OK", b"404 Not Found", b"500 Oops"]))
    headers = [b"HTTP/1.1 " + status, b"Content-Type: image/jpeg", b"Connection: close"]
    framing = draw(st.sampled_from(["exact", "none", "shorter", "longer", "bad_length", "chunked", "lying_chunks"]))
    if framing == "exact":
        headers.append(b"Content-Length: %d" % size)
    elif framing == "shorter":
        headers.append(b"Content-Length: %d" % max(0, size - draw(st.integers(1, 1000))))
    elif framing == "longer":
        headers.append(b"Content-Length: %d" % (size + draw(st.integers(1, 10 * LIMIT))))
    elif framing == "bad_length":
        headers.append(b"Content-Length: " + draw(st.sampled_from([b"-1", b"abc", b"1e3", b"9" * 30, b"10, 20"])))
    elif framing in ("chunked", "lying_chunks"):
        headers.append(b"Transfer-Encoding: chunked")
        step = draw(st.integers(1, LIMIT))
        chunks = [body[i : i + step] for i in range(0, size, step)]
        claim = (lambda c: len(c) + 7) if framing == "lying_chunks" else len
        body = b"".join(b"%x\r\n%s\r\n" % (claim(c), c) for c in chunks) + (b"0\r\n\r\n" if framing == "chunked" else b"")
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


HTTP_CORPUS = [
    # a negative Content-Length was returned as the announced size (-1), and "abc" raised ValueError
    b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\nContent-Length: abc\r\n\r\nbody",
]


@pytest.mark.parametrize("answer", HTTP_CORPUS)
def test_http_corpus(raw_server, answer):
    check_download(raw_server, answer)


@FUZZ
@given(hostile_answer())
def test_http_downloads_are_whole_or_refused_and_bounded(raw_server, answer):
    """sources/http.py download() (COCO single images and other plain HTTP upstreams)."""
    check_download(raw_server, answer)


def check_download(raw_server, answer: bytes) -> None:
    raw_server.answer = answer
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "staged.part"
        log = FetchLedger(Path(folder))
        tracemalloc.start()
        try:
            size = download(new_session("fuzz"), f"http://127.0.0.1:{raw_server.server_address[1]}/x.jpg", path, log, 5, LIMIT)
        except (requests.RequestException, Unavailable):
            size = None
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < MEMORY_BOUND
        if path.exists():
            assert path.stat().st_size <= LIMIT
        if size is not None:
            assert path.stat().st_size == size <= LIMIT


@settings(FUZZ, max_examples=30)
@given(hostile_answer())
def test_img2dataset_bodies_are_cut_at_the_limit(raw_server, img2dataset_download, answer):
    """img2dataset holds a whole body in memory: through the proxy it never gets more than the limit."""
    raw_server.answer = answer
    with VettingProxy(AddressPolicy.from_setting("127.0.0.1/32"), 5, max_response_bytes=LIMIT) as proxy, proxy.as_environment():
        urllib.request.install_opener(None)
        _, stream, error = img2dataset_download(f"http://127.0.0.1:{raw_server.server_address[1]}/x.jpg")
    assert stream is None or len(stream.getvalue()) <= LIMIT
    assert (stream is None) == (error is not None)
