"""A threaded HTTP server that serves synthesized upstream files like the real hosts do.

Files under the content folder are served at their relative path with HEAD, Range/206,
ETag and Content-Length on every response (keep-alive). Other upstream APIs plug in as
routes. Faults (429 with Retry-After, 500, 503, reset, truncated body, stall) are injected
at a configured rate, and every byte and request sent is counted. A `Link` shapes the
answers like a real network path: a bandwidth shared by all connections (token bucket) and
a round trip before each answer and for each new connection. `/_mirror/*` endpoints let
another process read the counters and change the faults and the link.
"""

import hashlib
import json
import random
import re
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

FAULT_KINDS = ("429", "500", "503", "reset", "truncate", "stall")
# answers (Mirror.answer) from a hostile upstream: Content-Length that lies either way, a redirect to
# itself, a body that never ends (no Content-Length; stops at ENDLESS_LIMIT bytes)
HOSTILE = ("short_length", "long_length", "redirect_loop", "endless")
ENDLESS_LIMIT = 8 << 30
CONTROL = "/_mirror/"


@dataclass
class Faults:
    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    path_prefix: str = "/"
    retry_after: float = 1.0
    stall_seconds: float = 5.0
    seed: int = 0
    # not a fault: a delay before every answer under path_prefix, to make runs slow enough to kill
    latency_seconds: float = 0.0


@dataclass(frozen=True)
class Link:
    """The network path between clients and the mirror; 0 means unlimited / no delay."""

    bandwidth_bytes_per_second: float = 0.0
    rtt_seconds: float = 0.0
    # bytes a quiet link may send at once (a router's queue): small, so the rate holds over any window
    burst_bytes: int = 128 << 10


class TokenBucket:
    """One bucket for the whole link: every connection's bytes draw from it, as on a shared wire."""

    def __init__(self, link: Link):
        self.link = link
        self._tokens = float(link.burst_bytes)
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> None:
        """Wait until `nbytes` may go out. A debt is taken at once and slept off, so concurrent
        senders queue behind each other instead of each seeing the full rate."""
        rate = self.link.bandwidth_bytes_per_second
        if rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.link.burst_bytes), self._tokens + (now - self._updated) * rate)
            self._updated = now
            self._tokens -= nbytes
            wait = -self._tokens / rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


@dataclass
class Reply:
    """A route's answer: a body (bytes or a file) with status and headers."""

    status: int = 200
    body: bytes | Path = b""
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[["MirrorHandler", str], Reply | None]


class MirrorState:
    def __init__(self, content_dir: Path):
        self.content_dir = Path(content_dir)
        self.routes: list[tuple[str, Route]] = []
        self.answers: dict[str, int | str] = {}  # path -> forced status, "garbage" or one of HOSTILE
        self.faults = Faults()
        self._random = random.Random(0)
        self.lock = threading.Lock()
        self.set_link(Link())
        self.reset_stats()

    def set_link(self, link: Link) -> None:
        self.link = link
        self.bucket = TokenBucket(link)

    def reset_stats(self) -> None:
        with self.lock:
            self.bytes_sent = 0
            self.requests = 0
            self.faults_injected = 0
            self.by_prefix: dict[str, dict[str, int]] = {}

    def set_faults(self, faults: Faults) -> None:
        with self.lock:
            self.faults = faults
            self._random = random.Random(faults.seed)

    def pick_fault(self, path: str) -> str | None:
        with self.lock:
            faults = self.faults
        if faults.latency_seconds and path.startswith(faults.path_prefix):
            time.sleep(faults.latency_seconds)
        with self.lock:
            if faults.rate <= 0 or not path.startswith(faults.path_prefix):
                return None
            if self._random.random() >= faults.rate:
                return None
            self.faults_injected += 1
            return self._random.choice(faults.kinds)

    def count(self, path: str, nbytes: int, request: bool) -> None:
        prefix = "/" + path.lstrip("/").split("/", 1)[0]
        with self.lock:
            self.bytes_sent += nbytes
            entry = self.by_prefix.setdefault(prefix, {"bytes": 0, "requests": 0})
            entry["bytes"] += nbytes
            if request:
                self.requests += 1
                entry["requests"] += 1

    def stats(self) -> dict:
        with self.lock:
            return {
                "bytes_sent": self.bytes_sent,
                "requests": self.requests,
                "faults_injected": self.faults_injected,
                "by_prefix": json.loads(json.dumps(self.by_prefix)),
            }


def etag_of(path: Path) -> str:
    stat = path.stat()
    return '"' + hashlib.sha1(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest() + '"'


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end inclusive), None for no/ignored Range, "invalid" for an unsatisfiable one."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        length = int(last)
        if length == 0:
            return "invalid"
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "invalid"
    return start, end


class MirrorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "encord-mirror/1"
    state: MirrorState  # set on the server subclass

    def log_message(self, format, *args):  # noqa: A002 - quiet: the tests count, not read, requests
        return

    def setup(self):
        super().setup()
        # Small responses would otherwise wait on Nagle + delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # the TCP handshake: a new connection costs one round trip before its first request
        if self.state.link.rtt_seconds:
            time.sleep(self.state.link.rtt_seconds)

    @property
    def path_only(self) -> str:
        return urlsplit(self.path).path

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def do_POST(self):
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        path = self.path_only
        try:
            if path.startswith(CONTROL):
                return self._control(path[len(CONTROL) :])
            self.state.count(path, 0, request=True)
            if self.state.link.rtt_seconds:
                time.sleep(self.state.link.rtt_seconds)  # the request travels there and the first byte back
            fault = self.state.pick_fault(path)
            if fault in ("429", "500", "503"):
                headers = {"Retry-After": f"{self.state.faults.retry_after:g}"} if fault == "429" else {}
                return self.send(Reply(int(fault), f"injected {fault}\n".encode(), headers), head)
            if fault == "reset":
                return self._reset()
            if fault == "stall":
                time.sleep(self.state.faults.stall_seconds)
                self.close_connection = True
                return None
            forced = self.state.answers.get(path)
            if forced == "garbage":
                return self.send(Reply(200, b"\x00garbage, not what you asked for\xff" * 8), head)
            if isinstance(forced, int):
                return self.send(Reply(forced, f"forced {forced}\n".encode()), head)
            if forced in HOSTILE:
                return self._hostile(forced, path)
            reply = self._route(path)
            return self.send(reply, head, truncate=fault == "truncate")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, path: str) -> Reply:
        for prefix, route in self.state.routes:
            if path.startswith(prefix):
                reply = route(self, path)
                if reply is not None:
                    return reply
        file = (self.state.content_dir / path.lstrip("/")).resolve()
        if file.is_file() and file.is_relative_to(self.state.content_dir.resolve()):
            return Reply(200, file)
        return Reply(404, b"not found\n")

    def _hostile(self, kind: str, path: str) -> None:
        """A redirect to itself, or a lying or endless answer (the connection is closed after those)."""
        if kind == "redirect_loop":
            self.send_response(302)
            self.send_header("Location", path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.close_connection = True
        body = self._route(path).body
        body = body.read_bytes() if isinstance(body, Path) else body
        self.send_response(200)
        if kind != "endless":
            # short_length announces half of the body and sends all of it; long_length the reverse
            self.send_header("Content-Length", str(len(body) // 2 if kind == "short_length" else len(body) * 2))
        self.send_header("Connection", "close")
        self.end_headers()
        if kind != "endless":
            self.wfile.write(body)
            return
        chunk = random.Random(0).randbytes(1 << 16)
        for _ in range(ENDLESS_LIMIT // len(chunk)):  # endless for any sane client: it must hang up first
            self.state.count(path, len(chunk), request=False)
            self.wfile.write(chunk)

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def send(self, reply: Reply, head: bool, truncate: bool = False) -> None:
        body = reply.body
        size = body.stat().st_size if isinstance(body, Path) else len(body)
        status, start, end = reply.status, 0, size - 1
        headers = dict(reply.headers)
        if isinstance(body, Path):
            headers.setdefault("ETag", etag_of(body))
        if status == 200:
            headers["Accept-Ranges"] = "bytes"
            wanted = parse_range(self.headers.get("Range"), size)
            if wanted == "invalid":
                status, body, size = 416, b"", 0
                headers = {"Content-Range": f"bytes */{end + 1}"}
                start, end = 0, -1
            elif wanted is not None:
                start, end = wanted
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1 if size else 0
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if head or length == 0:
            return
        sent_limit = length // 2 if truncate else length
        self._write_body(body, start, sent_limit)
        if truncate:
            self.close_connection = True

    def _write_body(self, body: bytes | Path, start: int, length: int) -> None:
        # shaped links send in small pieces so connections share the rate finely
        piece = 64 << 10 if self.state.link.bandwidth_bytes_per_second else 1 << 20
        if isinstance(body, bytes):
            for offset in range(start, start + length, piece):
                self._write_piece(body[offset : min(offset + piece, start + length)])
            return
        with open(body, "rb") as f:
            f.seek(start)
            remaining = length
            while remaining > 0:
                chunk = f.read(min(remaining, piece))
                if not chunk:
                    break
                self._write_piece(chunk)
                remaining -= len(chunk)

    def _write_piece(self, chunk: bytes) -> None:
        self.state.bucket.take(len(chunk))
        # counted first: a client that has read the bytes finds them in the stats
        self.state.count(self.path_only, len(chunk), request=False)
        self.wfile.write(chunk)

    def _control(self, action: str) -> None:
        state = self.state
        payload = {}
        if self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"{}")
        if action == "faults" and self.command == "POST":
            kinds = tuple(payload.pop("kinds", FAULT_KINDS))
            state.set_faults(Faults(kinds=kinds, **payload))
        elif action == "answers" and self.command == "POST":
            with state.lock:
                state.answers = dict(payload)
        elif action == "link" and self.command == "POST":
            state.set_link(Link(**payload))
        elif action == "reset" and self.command == "POST":
            state.reset_stats()
        elif action != "stats":
            return self.send(Reply(404, b"unknown control action\n"), head=False)
        body = json.dumps(state.stats()).encode()
        self.send(Reply(200, body, {"Content-Type": "application/json"}), head=False)


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's listen backlog of 5 overflows when dozens of connections arrive at once, and
    # each dropped one waits out a 1 s SYN retransmit: an upstream's backlog is far larger
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # Clients hang up on keep-alive connections with unread data (yt-dlp's generic extractor
        # reads only the start of a file; a tar stream is closed once its members are found):
        # normal for an upstream, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Mirror:
    """Two listeners on 127.0.0.1 sharing one state: `url` (the upstream hosts) and
    `cdn_url` (a second origin, for redirects such as Hugging Face's LFS files)."""

    def __init__(self, content_dir: Path, port: int = 0, cdn_port: int = 0, link: Link = Link()):
        self.state = MirrorState(content_dir)
        self.state.set_link(link)
        handler = type("BoundMirrorHandler", (MirrorHandler,), {"state": self.state})
        self._servers = [MirrorServer(("127.0.0.1", p), handler) for p in (port, cdn_port)]
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def add_route(self, prefix: str, route: Route) -> None:
        self.state.routes.append((prefix, route))

    def start(self) -> "Mirror":
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> "Mirror":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def set_faults(self, rate: float, **options) -> None:
        self.state.set_faults(Faults(rate=rate, **options))

    def set_link(self, link: Link) -> None:
        self.state.set_link(link)

    def answer(self, answers: dict[str, int | str]) -> None:
        with self.state.lock:
            self.state.answers = dict(answers)

    def stats(self) -> dict:
        return self.state.stats()

    def reset_stats(self) -> None:
        self.state.reset_stats()
