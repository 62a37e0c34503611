"""The mirror behaves like a real static host: HEAD, Range/206, ETag, keep-alive, faults, counters."""

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from encord_assets.mirror.server import Link, Mirror


def make_mirror(tmp_path) -> Mirror:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "blob.bin").write_bytes(bytes(range(256)) * 40)
    return Mirror(tmp_path).start()


def test_head_range_and_etag(tmp_path):
    with make_mirror(tmp_path) as mirror:
        url = f"{mirror.url}/files/blob.bin"
        head = requests.head(url)
        assert head.status_code == 200 and head.headers["Content-Length"] == "10240" and head.headers["ETag"]
        part = requests.get(url, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == bytes(range(10, 20))
        assert part.headers["Content-Range"] == "bytes 10-19/10240"
        tail = requests.get(url, headers={"Range": "bytes=-4"})
        assert tail.content == bytes(range(252, 256))
        assert requests.get(url, headers={"Range": "bytes=99999-"}).status_code == 416
        assert requests.get(f"{mirror.url}/files/missing").status_code == 404
        assert requests.get(f"{mirror.url}/../../etc/passwd").status_code == 404
        stats = mirror.stats()
        assert stats["requests"] == 6 and stats["bytes_sent"] == 10 + 4 + len(b"not found\n") * 2


def test_faults_are_injected_at_the_configured_rate_and_counted(tmp_path):
    with make_mirror(tmp_path) as mirror:
        url = f"{mirror.url}/files/blob.bin"
        mirror.set_faults(1.0, kinds=("429",), retry_after=7)
        answer = requests.get(url)
        assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
        mirror.set_faults(1.0, kinds=("truncate",))
        try:
            body = requests.get(url).content
            assert len(body) < 10240
        except requests.exceptions.RequestException:
            pass  # urllib3 notices the short body: either way no client gets the whole file
        mirror.set_faults(1.0, kinds=("reset",))
        try:
            requests.get(url)
            raise AssertionError("a reset must not answer")
        except requests.exceptions.ConnectionError:
            pass
        mirror.set_faults(0.5, kinds=("500",), seed=3)
        codes = [requests.get(url).status_code for _ in range(40)]
        assert 10 <= codes.count(500) <= 30 and codes.count(200) == 40 - codes.count(500)
        assert mirror.stats()["faults_injected"] == 3 + codes.count(500)


def test_control_endpoints_serve_other_processes(tmp_path):
    with make_mirror(tmp_path) as mirror:
        requests.post(f"{mirror.url}/_mirror/faults", json={"rate": 1.0, "kinds": ["503"]})
        assert requests.get(f"{mirror.url}/files/blob.bin").status_code == 503
        requests.post(f"{mirror.url}/_mirror/faults", json={"rate": 0.0})
        requests.post(f"{mirror.url}/_mirror/answers", json={"/files/blob.bin": 404})
        assert requests.get(f"{mirror.url}/files/blob.bin").status_code == 404
        stats = requests.get(f"{mirror.url}/_mirror/stats").json()
        assert stats["requests"] == 2


def timed_get(session, url, **kwargs):
    started = time.monotonic()
    answer = session.get(url, **kwargs)
    answer.raise_for_status()
    return time.monotonic() - started, answer


def test_a_shaped_link_limits_bandwidth_across_connections(tmp_path):
    (tmp_path / "big.bin").write_bytes(bytes(4 << 20))
    rate = 8 << 20  # bytes per second
    with Mirror(tmp_path, link=Link(bandwidth_bytes_per_second=rate)) as mirror:
        url = f"{mirror.url}/big.bin"
        alone, answer = timed_get(requests.Session(), url)
        assert len(answer.content) == 4 << 20
        assert alone > 0.5 * (4 << 20) / rate
        # four connections share the link: together they take about as long as their bytes need
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            sizes = list(pool.map(lambda _: len(requests.get(url, headers={"Range": "bytes=0-1048575"}).content), range(4)))
        assert sizes == [1 << 20] * 4 and time.monotonic() - started > 0.5 * (4 << 20) / rate


def test_a_shaped_link_adds_a_round_trip_per_request_and_per_connection(tmp_path):
    (tmp_path / "small.bin").write_bytes(b"x" * 100)
    rtt = 0.1
    with Mirror(tmp_path) as mirror:
        url = f"{mirror.url}/small.bin"
        mirror.set_link(Link(rtt_seconds=rtt))
        warm = requests.Session()
        cold, _ = timed_get(warm, url)  # a new connection: handshake + request
        again = [timed_get(warm, url)[0] for _ in range(3)]  # kept alive: the request's round trip only
        assert cold > 0.5 * 2 * rtt
        assert all(seconds > 0.5 * rtt for seconds in again)
        # the link can be changed from another process too
        requests.post(f"{mirror.url}/_mirror/link", json={"rtt_seconds": 0})
        assert mirror.state.link == Link()
