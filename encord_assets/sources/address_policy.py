"""Which addresses URL sources may connect to, checked on the address actually connected to.

Row URLs come from infos files: one pointing at loopback, at the cloud metadata service
(169.254.169.254) or into a private network would make us fetch from inside. The check runs
after resolution, on the very address the connection then uses, so a host that resolves to a
public address when checked and to a private one when connecting (DNS rebinding) gains
nothing; a redirect is a new request, and is checked again.

img2dataset fetches with urllib in worker processes of its own and offers no hook on the
connection, so it is given a forwarding proxy on 127.0.0.1 (`http_proxy`/`https_proxy`): the
proxy resolves each host, checks every address and connects to a checked one itself. HTTPS
goes through CONNECT, so TLS and certificate checks stay end to end. Refusals answer 403 with
`blocked_address` in the reason, which img2dataset records as the row's error message. An
answer longer than the proxy's byte limit is cut there: img2dataset holds each body in memory.

The proxy is an asyncio relay in a process of its own: one request costs it a few tenths of a
millisecond of CPU, which in the step's process would compete for one GIL with everything else
there (tens of thousands of requests per partition). It stops when its standard input closes,
so it never outlives the process that started it.
"""

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import os
import pickle
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import urlsplit

Resolver = Callable[..., list]
# (protocol factory, checked address) -> a connection to that address, like loop.create_connection
Connector = Callable[[Callable[[], asyncio.Protocol], tuple[str, int]], Awaitable[tuple[asyncio.Transport, asyncio.Protocol]]]

_MAX_HEADER_LINES = 200
# the request line and headers, read at once; a longer head is refused like a malformed one
_MAX_HEAD_BYTES = 1 << 18
# resolutions waiting at once (each blocks a thread): as many as img2dataset's default connections
_RESOLVERS = 64
PROXY_VARIABLES = ("http_proxy", "https_proxy", "ftp_proxy")


class BlockedAddress(Exception):
    """The host resolves to an address URL sources must not reach."""


async def _connect(protocol: Callable[[], asyncio.Protocol], address: tuple[str, int]) -> tuple[asyncio.Transport, asyncio.Protocol]:
    # `address` is numeric: asyncio connects to it without another resolution
    return await asyncio.get_running_loop().create_connection(protocol, *address)


def parse_networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Networks from `127.0.0.1/32, 10.0.0.0/8` (addresses alone mean themselves)."""
    return tuple(ipaddress.ip_network(part, strict=False) for part in spec.replace(",", " ").split())


@dataclass(frozen=True)
class AddressPolicy:
    """Public (global unicast) addresses only, plus the networks explicitly allowed."""

    allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_setting(cls, spec: str) -> "AddressPolicy":
        return cls(parse_networks(spec))

    def problem(self, address: str) -> str | None:
        """Why a connection to `address` is refused (None when it is allowed)."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allowed if network.version == ip.version):
            return None
        for kind, flagged in (
            ("loopback", ip.is_loopback),
            ("link-local", ip.is_link_local),
            ("multicast", ip.is_multicast),
            ("unspecified", ip.is_unspecified),
            ("reserved", ip.is_reserved),
            ("private", ip.is_private),
            ("non-global", not ip.is_global),
        ):
            if flagged:
                return f"{ip} is a {kind} address"
        return None

    def addresses(self, host: str, port: int, resolve: Resolver = socket.getaddrinfo) -> list[tuple[str, int]]:
        """Every address `host` resolves to, if all are allowed; BlockedAddress otherwise."""
        found = [(info[4][0], port) for info in resolve(host, port, type=socket.SOCK_STREAM)]
        for address, _ in found:
            if problem := self.problem(address):
                raise BlockedAddress(f"blocked_address: {host} resolves to {problem}")
        return list(dict.fromkeys(found))

    async def connect(
        self, host: str, port: int, protocol: Callable[[], asyncio.Protocol], resolve: Resolver = socket.getaddrinfo, connect: Connector = _connect
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        """A connection to a checked address of `host` (the first one that answers), served by `protocol()`."""
        try:
            ipaddress.ip_address(host)
        except ValueError:  # a name: resolving it blocks, so in a thread of its own
            addresses = await asyncio.get_running_loop().run_in_executor(None, self.addresses, host, port, resolve)
        else:  # a literal address: `resolve` parses it without a lookup
            addresses = self.addresses(host, port, resolve)
        error: OSError | None = None
        for address in addresses:
            try:
                return await connect(protocol, address)
            except OSError as failure:
                error = failure
        raise error or OSError(f"{host} has no address")


@dataclass(frozen=True)
class _Relay:
    policy: AddressPolicy
    timeout_seconds: float
    max_response_bytes: int
    resolve: Resolver
    connect: Connector


class _Client(asyncio.Protocol):
    """A connection from img2dataset: its request head is read here, then bytes are relayed between
    it and the upstream connection (`_Upstream`) as they come, with back-pressure both ways.
    The pair is closed once either side is done, or after `timeout_seconds` without a byte."""

    def __init__(self, relay: _Relay):
        self.relay = relay
        self.buffer = b""  # the head until it is complete, then the bytes that followed it
        self.upstream: _Upstream | None = None
        self.forward = False  # whether the client's later bytes go upstream (a tunnel, a request body)
        self.connecting = False

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport, self.loop = transport, asyncio.get_running_loop()
        self.active = self.loop.time()
        self.timer = self.loop.call_later(self.relay.timeout_seconds, self._idle)

    def _idle(self) -> None:
        # one timer per pair, moved on only when it fires: bytes merely note the time
        wait = self.active + self.relay.timeout_seconds - self.loop.time()
        if self.connecting or wait > 0:  # connecting has a timeout of its own
            self.timer = self.loop.call_later(self.relay.timeout_seconds if self.connecting else wait, self._idle)
        else:  # at once, buffered bytes and all: a peer that reads nothing would keep a closing pair open
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.active = self.loop.time()
        if self.upstream is not None:
            if self.forward and not self.upstream.transport.is_closing():
                self.upstream.transport.write(data)
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEAD_BYTES:
                self.transport.close()
            return
        head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4 :]
        self.transport.pause_reading()
        try:
            request, *headers = head.split("\r\n")
            method, target, version = request.split()
        except ValueError:
            self.transport.close()
            return
        if len(headers) > _MAX_HEADER_LINES:
            self.transport.close()
            return
        self._request(method, target, version, headers)

    def _request(self, method: str, target: str, version: str, headers: list[str]) -> None:
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            established = b"HTTP/1.1 200 Connection established\r\n\r\n"
            self._relay(host.strip("[]"), int(port) if port.isdigit() else 443, established)
            return
        try:
            url = urlsplit(target)
        except ValueError:  # such as an unclosed [IPv6 literal
            self._refuse(400, f"bad_url: {target[:200]!r} cannot be parsed")
            return
        if url.scheme != "http" or not url.hostname:
            self._refuse(403, f"blocked_scheme: only http and https URLs are fetched, not {target[:200]!r}")
            return
        try:
            port = url.port or 80
        except ValueError:
            self._refuse(400, f"bad_url: {target[:200]!r} has no valid port")
            return
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = [h for h in headers if not h.lower().startswith(("proxy-", "connection:", "keep-alive:"))]
        head = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""]).encode("latin-1")
        # a request without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3): nothing
        # more to forward (img2dataset's GETs are all of this kind)
        has_body = any(h.lower().startswith(("content-length:", "transfer-encoding:")) for h in headers)
        self._relay(url.hostname, port, head, to_upstream=True, forward=has_body)

    def _relay(self, host: str, port: int, first: bytes, to_upstream: bool = False, forward: bool = True) -> None:
        self.connecting = True
        # held here: the loop keeps only a weak reference to its tasks
        self.opening = self.loop.create_task(self._open(host, port, first, to_upstream, forward))

    async def _open(self, host: str, port: int, first: bytes, to_upstream: bool, forward: bool) -> None:
        relay = self.relay
        try:
            async with asyncio.timeout(relay.timeout_seconds):
                transport, upstream = await relay.policy.connect(host, port, lambda: _Upstream(self), relay.resolve, relay.connect)
        except BlockedAddress as blocked:
            self._refuse(403, str(blocked))
            return
        except socket.gaierror as error:
            self._refuse(502, f"host_not_found: {host}: {error.strerror}")
            return
        except (UnicodeError, ValueError) as error:  # a host name that cannot be encoded or parsed
            self._refuse(400, f"bad_url: {host[:200]!r}: {error}")
            return
        except OSError as error:
            self._refuse(504 if isinstance(error, TimeoutError) else 502, f"cannot connect to {host}:{port}: {error}")
            return
        finally:
            self.connecting = False
        if self.transport.is_closing():  # the client hung up meanwhile
            transport.close()
            return
        self.upstream, self.forward = upstream, forward
        (transport if to_upstream else self.transport).write(first)
        if forward and self.buffer:
            transport.write(self.buffer)
        self.buffer = b""
        # reading on also when nothing more is forwarded: that is how a client hanging up is seen
        self.transport.resume_reading()

    def _refuse(self, status: int, reason: str) -> None:
        if self.transport.is_closing():  # the client hung up meanwhile
            return
        reason = reason.replace("\r", " ").replace("\n", " ")
        self.transport.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode("latin-1", "replace"))
        self.transport.close()

    def eof_received(self) -> bool:
        if self.upstream is None:
            return False
        if self.forward and not self.upstream.transport.is_closing():
            self.upstream.transport.write_eof()
        return True  # half-closed: the answer still comes back

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()
        if self.upstream is not None:
            self.upstream.transport.close()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.resume_reading()


class _Upstream(asyncio.Protocol):
    """The connection to the checked address: its bytes go to the client, up to the byte limit."""

    def __init__(self, client: _Client):
        self.client = client
        self.room = client.relay.max_response_bytes

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        client = self.client.transport
        self.client.active = self.client.loop.time()
        if client.is_closing():
            self.transport.close()
            return
        if len(data) > self.room:  # cut: img2dataset would hold all of it in memory
            client.write(data[: self.room])
            client.close()
            self.transport.close()
            return
        self.room -= len(data)
        client.write(data)

    def eof_received(self) -> bool:
        # the answer is complete (every request says `Connection: close`) or the tunnel ended
        self.client.transport.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.transport.close()

    def pause_writing(self) -> None:
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client.transport.resume_reading()


async def _serve(relay: _Relay) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(_RESOLVERS, thread_name_prefix="resolve"))
    server = await loop.create_server(lambda: _Client(relay), "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        # the parent closes our standard input when it is done with the proxy (or when it dies)
        await loop.run_in_executor(None, sys.stdin.buffer.read)


def serve() -> None:
    """The proxy process: its settings arrive pickled on standard input; it prints its port."""
    import uvloop  # libuv's loop: a third less CPU per request than asyncio's own; only this process needs it

    uvloop.run(_serve(_Relay(*pickle.load(sys.stdin.buffer))))


class VettingProxy:
    """A forwarding proxy on 127.0.0.1 that connects only where `policy` allows, for a `with` block.
    `resolve` and `connect` (picklable: they run in the proxy's process) replace name resolution
    and connecting to a checked address."""

    def __init__(
        self,
        policy: AddressPolicy,
        timeout_seconds: float,
        max_response_bytes: int = 64 << 20,
        resolve: Resolver = socket.getaddrinfo,
        connect: Connector = _connect,
    ):
        self._settings = pickle.dumps((policy, timeout_seconds, max_response_bytes, resolve, connect))
        self._process: subprocess.Popen | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> "VettingProxy":
        # its own session: Ctrl-C reaches the step, which then closes the proxy
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from encord_assets.sources.address_policy import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)},
            start_new_session=True,
        )
        try:
            self._process.stdin.write(self._settings)
            self._process.stdin.flush()
            port = self._process.stdout.readline()
            if not port.strip().isdigit():
                raise RuntimeError(f"the vetting proxy did not start (exit status {self._process.poll()})")
        except BaseException:
            self.__exit__()
            raise
        self._port = int(port)
        return self

    def __exit__(self, *_) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    @contextlib.contextmanager
    def as_environment(self):
        """Route urllib in this process and in processes started meanwhile through the proxy;
        `no_proxy` is lifted, since it would let hosts bypass the check."""
        names = [*PROXY_VARIABLES, *(n.upper() for n in PROXY_VARIABLES), "no_proxy", "NO_PROXY"]
        saved = {name: os.environ.get(name) for name in names}
        try:
            for name in ("no_proxy", "NO_PROXY"):
                os.environ.pop(name, None)
            for name in PROXY_VARIABLES:
                os.environ[name] = os.environ[name.upper()] = self.url
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
