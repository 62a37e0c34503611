"""URL sources reach public addresses only (plus what a setting allows), checked at connection time.

No packet leaves 127.0.0.0/8: link-local, private and multicast targets are tested on the check
itself, and through the proxy with test hostnames that resolve to them and a connection layer
that records every call (it refuses anything outside loopback instead of sending a packet).
"""

import asyncio
import http.server
import ipaddress
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from encord_assets.ledger import FetchLedger
from encord_assets.sources.address_policy import (
    AddressPolicy,
    BlockedAddress,
    VettingProxy,
)
from encord_assets.sources.url_images import UrlImages, outcome_of
from encord_assets_tests.conftest import (
    IMAGE_HEADER,
    manifest_of,
    partition_work,
    write_infos,
)

GCC = "image_googleconceptualcaptions"
TEST_HOSTS = {
    "metadata.test": "169.254.169.254",
    "intranet.test": "10.1.2.3",
    "home.test": "192.168.0.10",
    "multicast.test": "224.0.0.251",
    "v6-link.test": "fe80::1",
    "v6-private.test": "fd00::1",
    "loopback.test": "127.0.0.1",
}


def resolve(host, port, *args, **kwargs):
    """Test hostnames resolve to chosen addresses; literals go to getaddrinfo, which parses them
    without any lookup."""
    if host in TEST_HOSTS:
        address = TEST_HOSTS[host]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]
    return socket.getaddrinfo(host, port, *args, flags=socket.AI_NUMERICHOST, **kwargs)


class RecordingConnector:
    """Records every connection asked of it in a file (it runs in the proxy's process); opens only
    loopback ones."""

    def __init__(self, record: Path):
        self.record = record

    async def __call__(self, protocol, address):
        with self.record.open("a") as record:
            record.write(f"{address[0]} {address[1]}\n")
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"a test asked to connect to {address}")
        return await asyncio.get_running_loop().create_connection(protocol, *address)

    @property
    def calls(self) -> list[tuple[str, int]]:
        lines = self.record.read_text().splitlines() if self.record.exists() else []
        return [(host, int(port)) for host, port in (line.split() for line in lines)]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("::ffff:169.254.169.254", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "non-global"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_inner_addresses_are_refused_by_the_check(address, kind):
    assert AddressPolicy().problem(address) == f"{address.split('%')[0].removeprefix('::ffff:')} is a {kind} address"


def test_public_addresses_pass_and_allowed_networks_open_only_what_they_name():
    assert AddressPolicy().problem("93.184.216.34") is None
    assert AddressPolicy().problem("2606:2800:220:1:248:1893:25c8:1946") is None
    policy = AddressPolicy.from_setting("127.0.0.1/32, 10.0.0.0/8")
    assert policy.problem("127.0.0.1") is None and policy.problem("10.9.9.9") is None
    assert policy.problem("127.0.0.2") == "127.0.0.2 is a loopback address"
    with pytest.raises(BlockedAddress, match="blocked_address: metadata.test resolves to 169.254.169.254"):
        policy.addresses("metadata.test", 80, resolve)


def fetch_through_proxy(download, urls, record, policy=AddressPolicy()):
    connector = RecordingConnector(record)
    with VettingProxy(policy, 5, resolve=resolve, connect=connector) as proxy, proxy.as_environment():
        urllib.request.install_opener(None)
        results = [download(url) for url in urls]
    return results, connector.calls


@pytest.mark.parametrize(
    "url",
    [
        "http://metadata.test/latest/meta-data/iam/security-credentials/",
        "https://metadata.test/latest/meta-data/",
        "http://intranet.test:8080/a.jpg",
        "https://home.test/a.jpg",
        "http://multicast.test/a.jpg",
        "https://v6-link.test/a.jpg",
        "http://v6-private.test/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "https://[::ffff:169.254.169.254]/latest/",
        "http://0.0.0.0:9/a.jpg",
        "https://loopback.test/a.jpg",
    ],
)
def test_img2dataset_never_connects_to_a_blocked_host(img2dataset_download, url, tmp_path):
    ((_, stream, error),), calls = fetch_through_proxy(img2dataset_download, [url], tmp_path / "connections")
    assert stream is None and calls == []
    assert outcome_of("failed_to_download", error)[:2] == (True, "blocked_address"), error


class Redirects(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/image.jpg":
            body = b"\xff\xd8 not really a jpeg"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        location = {"/to-metadata": "http://metadata.test/latest/meta-data/", "/to-self": "/image.jpg"}[self.path]
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


@pytest.fixture
def redirecting_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirects)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_each_redirect_is_checked_again(img2dataset_download, redirecting_server, tmp_path):
    port = int(redirecting_server.rsplit(":", 1)[1])
    (blocked, followed), calls = fetch_through_proxy(
        img2dataset_download,
        [f"{redirecting_server}/to-metadata", f"{redirecting_server}/to-self"],
        tmp_path / "connections",
        AddressPolicy.from_setting("127.0.0.1/32"),
    )
    assert outcome_of("failed_to_download", blocked[2])[:2] == (True, "blocked_address"), blocked[2]
    assert followed[1].read() == b"\xff\xd8 not really a jpeg"
    assert calls == [("127.0.0.1", port)] * 3  # the redirect to metadata.test never got a connection


def test_tunnels_open_only_to_allowed_addresses():
    echo = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: (lambda c: c[0].sendall(c[0].recv(100)))(echo.accept()), daemon=True).start()
    port = echo.getsockname()[1]
    with VettingProxy(AddressPolicy.from_setting("127.0.0.1/32"), 5) as proxy:
        proxy_port = int(proxy.url.rsplit(":", 1)[1])
        answers = []
        for target in (f"127.0.0.1:{port}", f"127.0.0.2:{port}"):
            with socket.create_connection(("127.0.0.1", proxy_port), 5) as client:
                client.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
                answer = client.recv(200)
                if answer.startswith(b"HTTP/1.1 200"):
                    client.sendall(b"through the tunnel")
                    answer += client.recv(100)
                answers.append(answer)
    echo.close()
    assert answers[0].endswith(b"through the tunnel")
    assert answers[1].startswith(b"HTTP/1.1 403 blocked_address: 127.0.0.2 resolves to 127.0.0.2 is a loopback address")


def test_a_request_body_is_forwarded_and_a_bodyless_request_answered():
    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self._answer(self.rfile.read(int(self.headers["Content-Length"])))

        def do_GET(self):
            self._answer(b"no body")

        def _answer(self, body):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/echo"
    with VettingProxy(AddressPolicy.from_setting("127.0.0.1/32"), 5) as proxy:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy.url}))
        with opener.open(urllib.request.Request(url, data=b"sent through the proxy"), timeout=5) as posted:
            assert posted.read() == b"sent through the proxy"
        with opener.open(url, timeout=5) as got:
            assert got.read() == b"no body"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("request_line", "answer"),
    [
        ("GET http://127.0.0.1:port/x.jpg HTTP/1.1", b"HTTP/1.1 400 bad_url: "),
        ("GET ftp://127.0.0.1/x.jpg HTTP/1.1", b"HTTP/1.1 403 blocked_scheme: "),
        ("GET http://host\u00e9..invalid/x.jpg HTTP/1.1", b"HTTP/1.1 400 bad_url: "),
        ("GET http://[::1/x.jpg HTTP/1.1", b"HTTP/1.1 400 bad_url: "),
    ],
)
def test_the_proxy_refuses_malformed_requests(request_line, answer):
    with VettingProxy(AddressPolicy(), 5) as proxy:
        with socket.create_connection(("127.0.0.1", int(proxy.url.rsplit(":", 1)[1])), 5) as client:
            client.sendall(f"{request_line}\r\nHost: x\r\n\r\n".encode())
            assert client.recv(200).startswith(answer)


def test_only_http_urls_reach_img2dataset(tmp_path):
    rows = pl.DataFrame({"file_id": ["http://a.example/x.jpg"], "target": ["shared/image/x.jpg"]})
    log = FetchLedger(tmp_path / "staging")
    UrlImages(url_rewrite="http://=>file:///etc/").fetch(partition_work("image_googleconceptualcaptions", rows, log, tmp_path / "root"))
    (result,) = log.results().iter_rows(named=True)
    assert (result["outcome"], result["error_class"]) == ("unavailable", "unsupported_scheme")
    assert not list(tmp_path.rglob("img2dataset-*"))


def test_a_gcc_row_pointing_at_loopback_is_blocked_and_the_listener_hears_nothing(custom_infos, materializer, root):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            try:
                accepted.append(listener.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/latest/meta-data/a.jpg"
    write_infos(custom_infos, "e-mm1_1m", "image", [IMAGE_HEADER, f"1,Google Conceptual Captions,x,{url},a.jpg,shared"])
    assert "URL_IMAGES_ALLOWED_NETWORKS" not in os.environ
    materializer.run("infos_image", "e-mm1_1m", raise_on_error=True)
    (partition,) = materializer.source_partitions(GCC, "image")
    assert materializer.run(GCC, partition).success
    stop.set()
    thread.join()
    listener.close()
    (row,) = manifest_of(root, GCC, partition).iter_rows(named=True)
    assert (row["outcome"], row["error_class"]) == ("unavailable", "blocked_address"), row
    assert "127.0.0.1 is a loopback address" in row["error_message"]
    assert accepted == []


def test_a_large_answer_to_a_slow_reader_arrives_whole_and_idle_connections_are_closed():
    """Back-pressure: the proxy holds back the upstream while the client is slow, and loses nothing
    (also to a client that half-closed after its request); a client that sends nothing is hung up
    on after the timeout; the proxy ends with its block."""
    body = os.urandom(8 << 20)
    upstream = socket.create_server(("127.0.0.1", 0))

    def answer():
        connection, _ = upstream.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    threading.Thread(target=answer, daemon=True).start()
    with VettingProxy(AddressPolicy.from_setting("127.0.0.1/32"), 2) as proxy:
        proxy_address = ("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))
        with socket.create_connection(proxy_address, 10) as client:
            client.sendall(f"GET http://127.0.0.1:{upstream.getsockname()[1]}/big HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            client.shutdown(socket.SHUT_WR)  # a client done sending still gets its answer
            received = bytearray()
            while chunk := client.recv(1 << 16):
                received += chunk
                if len(received) < (2 << 20):
                    time.sleep(0.002)  # slower than loopback for the first megabytes
        with socket.create_connection(proxy_address, 10) as idle:
            started = time.monotonic()
            assert idle.recv(100) == b""
            assert 1.5 < time.monotonic() - started < 6
    upstream.close()
    assert received.endswith(body) and received.startswith(b"HTTP/1.1 200 OK")
    with pytest.raises(OSError):
        socket.create_connection(proxy_address, 2)
