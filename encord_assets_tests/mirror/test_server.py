"""The mirror behaves like a real static host: HEAD, Range/206, ETag, keep-alive, faults, counters."""

import requests

from encord_assets.mirror.server import Mirror


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
