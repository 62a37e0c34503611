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
"""

import contextlib
import ipaddress
import os
import socket
import socketserver
import threading
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

Resolver = Callable[..., list]
Connector = Callable[[tuple[str, int], float], socket.socket]

_MAX_HEADER_LINES = 200
_MAX_LINE_BYTES = 65536
_CHUNK = 1 << 16
PROXY_VARIABLES = ("http_proxy", "https_proxy", "ftp_proxy")


class BlockedAddress(Exception):
    """The host resolves to an address URL sources must not reach."""


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

    def connect(
        self, host: str, port: int, timeout: float, resolve: Resolver = socket.getaddrinfo, connect: Connector = socket.create_connection
    ) -> socket.socket:
        """A connection to a checked address of `host` (the first one that answers)."""
        error: OSError | None = None
        for address in self.addresses(host, port, resolve):
            try:
                return connect(address, timeout)
            except OSError as failure:
                error = failure
        raise error or OSError(f"{host} has no address")


def _pipe(read: Callable[[int], bytes], destination: socket.socket, limit: int | None = None) -> None:
    sent = 0
    try:
        while chunk := read(_CHUNK):
            if limit is not None and sent + len(chunk) > limit:
                destination.sendall(chunk[: limit - sent])
                break
            destination.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        destination.shutdown(socket.SHUT_WR)


class _Handler(socketserver.StreamRequestHandler):
    server: "_Server"

    def handle(self) -> None:
        try:
            method, target, version = self.rfile.readline(_MAX_LINE_BYTES).decode("latin-1").split()
            headers = []
            for _ in range(_MAX_HEADER_LINES):
                line = self.rfile.readline(_MAX_LINE_BYTES).decode("latin-1")
                if line in ("\r\n", "\n", ""):
                    break
                headers.append(line.rstrip("\r\n"))
        except (OSError, ValueError):
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            self._relay(host.strip("[]"), int(port) if port.isdigit() else 443, b"HTTP/1.1 200 Connection established\r\n\r\n")
            return
        url = urlsplit(target)
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
        # more to forward, so no second thread (img2dataset's GETs are all of this kind)
        has_body = any(h.lower().startswith(("content-length:", "transfer-encoding:")) for h in headers)
        self._relay(url.hostname, port, head, to_upstream=True, forward_client=has_body)

    def _refuse(self, status: int, reason: str) -> None:
        reason = reason.replace("\r", " ").replace("\n", " ")
        with contextlib.suppress(OSError):
            self.wfile.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode("latin-1", "replace"))

    def _relay(self, host: str, port: int, first: bytes, to_upstream: bool = False, forward_client: bool = True) -> None:
        policy, timeout = self.server.policy, self.server.timeout_seconds
        try:
            upstream = policy.connect(host, port, timeout, self.server.resolve, self.server.connector)
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
        with upstream:
            upstream.settimeout(timeout)
            self.connection.settimeout(timeout)
            try:
                if to_upstream:
                    upstream.sendall(first)
                else:
                    self.wfile.write(first)
            except OSError:
                return
            if not forward_client:
                _pipe(upstream.recv, self.connection, self.server.max_response_bytes)
                return
            outgoing = threading.Thread(target=_pipe, args=(self.rfile.read1, upstream), daemon=True)
            outgoing.start()
            _pipe(upstream.recv, self.connection, self.server.max_response_bytes)
            outgoing.join(timeout)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, policy: AddressPolicy, timeout_seconds: float, max_response_bytes: int, resolve: Resolver, connector: Connector):
        self.policy, self.timeout_seconds, self.resolve, self.connector = policy, timeout_seconds, resolve, connector
        self.max_response_bytes = max_response_bytes
        super().__init__(("127.0.0.1", 0), _Handler)


class VettingProxy:
    """A forwarding proxy on 127.0.0.1 that connects only where `policy` allows, for a `with` block."""

    def __init__(
        self,
        policy: AddressPolicy,
        timeout_seconds: float,
        max_response_bytes: int = 64 << 20,
        resolve: Resolver = socket.getaddrinfo,
        connect: Connector = socket.create_connection,
    ):
        self._server = _Server(policy, timeout_seconds, max_response_bytes, resolve, connect)
        # a short poll keeps shutdown() quick: a proxy lives for one img2dataset call
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="vetting-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "VettingProxy":
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

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
