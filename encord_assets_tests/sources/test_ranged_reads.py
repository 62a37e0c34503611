"""Ranged reads of zip members against the mirror: coalescing, parallel ranges, streaming, retries, hostile archives."""

import itertools
import random
import struct
import zipfile

import fsspec
import pytest
import urllib3

from encord_assets.mirror.server import Mirror, Reply
from encord_assets.sources.ranged_reads import (
    LOCAL_HEADER,
    MAX_WASTE_SHARE,
    FileSource,
    HttpSource,
    Member,
    RangedReads,
    _pool_for,
    choose,
    fetch_members,
    measure_rtt,
    pick,
    plan_ranges,
)

OPTIONS = RangedReads(connections=4, gap_bytes=20_000, attempts=6, backoff_seconds=0.01)


def make_archive(path, count=60, size=9_000):
    """Stored noise, deflated text and ZIP64-headed members, in that rotation; returns name -> content."""
    rng = random.Random(7)
    contents = {}
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(count):
            kind = i % 3
            name = f"images/{i:04d}.{'jpg' if kind == 0 else 'txt' if kind == 1 else 'bin'}"
            data = rng.randbytes(size) if kind != 1 else (f"line {i} " * (size // 8)).encode()
            compression = zipfile.ZIP_DEFLATED if kind == 1 else zipfile.ZIP_STORED
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            with zf.open(info, "w", force_zip64=kind == 2) as out:
                out.write(data)
            contents[name] = data
    return contents


def members_of(path):
    with zipfile.ZipFile(path) as zf:
        return {info.filename: Member.of(info) for info in zf.infolist()}


@pytest.fixture()
def served(tmp_path):
    archive = tmp_path / "content" / "train.zip"
    archive.parent.mkdir()
    contents = make_archive(archive)
    with Mirror(tmp_path / "content") as mirror:
        yield mirror, f"{mirror.url}/train.zip", contents, members_of(archive), tmp_path


def new_path_in(folder):
    folder.mkdir(exist_ok=True)
    numbers = itertools.count()
    return lambda: folder / f"{next(numbers)}.part"


def check_staged(fetched, contents, names):
    assert not fetched.errors
    assert sorted(fetched.staged) == sorted(names)
    for name in names:
        assert fetched.staged[name].read_bytes() == contents[name]


def test_plan_joins_neighbours_within_the_gap_and_splits_long_ranges():
    members = [Member(f"m{i}", i * 1000, 500, 500, 0) for i in range(10)]
    assert len(plan_ranges(members, gap_bytes=0, max_range_bytes=10**9)) == 10
    joined = plan_ranges(members, gap_bytes=1000, max_range_bytes=10**9)
    assert len(joined) == 1 and joined[0].start == 0 and len(joined[0].members) == 10
    assert len(plan_ranges(members, gap_bytes=1000, max_range_bytes=3000)) > 3
    # a member overlapping its neighbour (a hostile archive) is read on its own
    assert len(plan_ranges([Member("a", 0, 5000, 5000, 0), Member("b", 100, 10, 10, 0)], 10**6, 10**9)) == 2


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("picked", [slice(5, 40, 3), slice(5, 29)], ids=["every-third", "adjacent"])
def test_subsets_are_staged_whole_with_few_requests_and_bytes(served, stream, picked):
    mirror, url, contents, members, tmp_path = served
    source = HttpSource(url)
    size = source.size
    wanted = sorted(contents)[picked]  # stored, deflated and ZIP64-headed members
    mirror.reset_stats()
    fetched = fetch_members(source, [members[n] for n in wanted], size, new_path_in(tmp_path / "staging"), OPTIONS, stream=stream)
    check_staged(fetched, contents, wanted)
    stats = mirror.stats()
    assert fetched.requests == stats["requests"] and fetched.bytes == stats["bytes_sent"]
    span = members[wanted[-1]].header_offset - members[wanted[0]].header_offset + 20_000
    planned = sum(members[n].planned_end - members[n].header_offset for n in wanted)
    if stream:
        assert fetched.method == "stream" and fetched.requests == 1 and fetched.bytes <= span
    else:
        assert fetched.requests == fetched.ranges and fetched.bytes <= span
        # gaps are read through only while they stay under a fifth of the members' bytes
        assert fetched.bytes <= (1 + MAX_WASTE_SHARE) * planned
        if picked.step is None:
            assert fetched.ranges <= 2 * OPTIONS.connections


def test_sparse_members_get_their_own_ranges_and_bytes_stay_near_needed(served):
    _, url, contents, members, tmp_path = served
    source = HttpSource(url)
    wanted = sorted(contents)[::7]
    sparse = OPTIONS.model_copy(update={"gap_bytes": 0})
    fetched = fetch_members(source, [members[n] for n in wanted], source.size, new_path_in(tmp_path / "s"), sparse)
    check_staged(fetched, contents, wanted)
    needed = sum(members[n].compress_size for n in wanted)
    assert fetched.ranges == len(wanted) and fetched.bytes <= 1.2 * needed


def test_transient_faults_are_retried_from_the_first_member_not_staged(served):
    mirror, url, contents, members, tmp_path = served
    source = HttpSource(url)
    size = source.size
    wanted = sorted(contents)
    mirror.set_faults(0.3, kinds=("500", "reset", "truncate", "429"), retry_after=0, seed=4)
    fetched = fetch_members(source, [members[n] for n in wanted], size, new_path_in(tmp_path / "f"), OPTIONS)
    check_staged(fetched, contents, wanted)
    assert mirror.stats()["faults_injected"] > 0


def test_a_file_opener_reads_only_the_ranges(served):
    _, _, contents, members, tmp_path = served
    archive = tmp_path / "content" / "train.zip"
    fs = fsspec.filesystem("file")
    source = FileSource(lambda: fs.open(str(archive), "rb"), archive.stat().st_size, piece_bytes=4096)
    wanted = sorted(contents)[10:20]
    fetched = fetch_members(source, [members[n] for n in wanted], source.size, new_path_in(tmp_path / "o"), OPTIONS)
    check_staged(fetched, contents, wanted)
    assert fetched.bytes < archive.stat().st_size / 3 and fetched.requests > 1


def corrupt(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_hostile_members_fail_alone_and_bounded(served):
    _, url, contents, members, tmp_path = served
    archive = tmp_path / "content" / "train.zip"
    names = sorted(contents)
    stored, text, header, renamed = names[3], names[4], names[6], names[9]
    data_start = lambda m: m.header_offset + LOCAL_HEADER.size + len(m.name) + struct.unpack("<H", archive.read_bytes()[m.header_offset + 28 : m.header_offset + 30])[0]
    corrupt(archive, data_start(members[stored]) + 10, b"\x00\x01\x02")  # CRC mismatch
    corrupt(archive, members[header].header_offset, b"XX")  # no local header signature
    corrupt(archive, members[renamed].header_offset + LOCAL_HEADER.size, b"../")  # the local name differs
    size = archive.stat().st_size
    lies = [
        Member("beyond", size - 10, 1000, 1000, 0),  # claims bytes past the archive: never requested
        Member("huge", 0, 100, 10**12, 0),  # over the member limit
        members[text].__class__(text, members[text].header_offset, members[text].compress_size, 100, members[text].crc, zipfile.ZIP_DEFLATED),  # inflates past its claimed size
    ]
    fine = names[12:20]
    wanted = [members[n] for n in (stored, header, renamed, *fine)] + lies
    fetched = fetch_members(HttpSource(url), wanted, size, new_path_in(tmp_path / "h"), OPTIONS, max_member_bytes=1 << 20)
    assert sorted(fetched.staged) == sorted(fine)
    assert set(fetched.errors) == {stored, header, renamed, "beyond", "huge", text}
    assert "CRC" in str(fetched.errors[stored]) and "local header" in str(fetched.errors[header])
    assert "names" in str(fetched.errors[renamed]) and "inflates past" in str(fetched.errors[text])
    assert not any(p.exists() for p in (tmp_path / "h").iterdir() if p not in fetched.staged.values())


def test_the_chooser_streams_dense_subsets_and_ranges_sparse_ones(served):
    _, url, _, members, _ = served
    source = HttpSource(url)
    rtt = measure_rtt(source)
    requests_before = source.counter.requests
    assert measure_rtt(source) == rtt and source.counter.requests == requests_before  # once per source
    everything = list(members.values())
    link = RangedReads()  # 8 connections, sized for 200 Mbit/s and 20 ms
    big = [Member(f"m{i}", i * 140_100, 140_000, 140_000, 0) for i in range(3000)]  # 100 bytes of header each
    # every other member over one connection: a request per member costs more than reading the gaps
    one = RangedReads(connections=1, gap_bytes=0)
    dense = choose(big[::2], 3000 * 140_100, 0.02, one)
    assert dense.method == "stream" and "stream estimated" in dense.reason
    # the whole archive over 8 connections: the same bytes either way; a stream saves only a round trip
    assert choose(big, 3000 * 140_100, 0.02, link).method == "ranges"
    sparse = choose(big[::100], 3000 * 140_100, 0.02, link)
    assert sparse.method == "ranges" and set(sparse.estimates) == {"ranges", "stream"}
    few = choose(big[:3], 3000 * 140_100, 0.02, link, single_gets=True, index_bytes=8_000_000)
    assert few.method == "single" and "round trip 20 ms" in few.reason
    assert choose(everything, source.size, rtt, link).method in ("ranges", "stream")


def test_a_local_extra_field_longer_than_planned_is_read_by_one_more_request(tmp_path):
    archive = tmp_path / "content" / "extra.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("long_extra.bin")
        info.extra = struct.pack("<HH", 0xCAFE, 3000) + bytes(3000)  # an unknown 3 KB extra block
        zf.writestr(info, b"payload" * 100)
        zf.writestr("after.bin", b"next")
    members = members_of(archive)
    with Mirror(tmp_path / "content") as mirror:
        source = HttpSource(f"{mirror.url}/extra.zip")
        size = source.size
        fetched = fetch_members(source, [members["long_extra.bin"]], size, new_path_in(tmp_path / "x"), OPTIONS)
    assert not fetched.errors and fetched.staged["long_extra.bin"].read_bytes() == b"payload" * 100
    assert fetched.requests == 2


def test_a_redirect_is_followed_once_and_the_token_stays_with_the_first_host(served):
    mirror, _, contents, members, tmp_path = served
    seen: list[tuple[str, str | None]] = []

    def resolve(handler, path):
        return Reply(302, b"", {"Location": f"{mirror.cdn_url}/cdn/train.zip"})

    def cdn(handler, path):
        seen.append((handler.command, handler.headers.get("Authorization")))
        return Reply(200, tmp_path / "content" / "train.zip")

    mirror.add_route("/resolve/", resolve)
    mirror.add_route("/cdn/", cdn)
    source = HttpSource(f"{mirror.url}/resolve/train.zip", headers={"Authorization": "Bearer secret"})
    wanted = sorted(contents)[::10]
    fetched = fetch_members(source, [members[n] for n in wanted], source.size, new_path_in(tmp_path / "r"), OPTIONS)
    check_staged(fetched, contents, wanted)
    assert mirror.stats()["by_prefix"]["/resolve"]["requests"] == 1  # one HEAD, not one per range
    assert len(seen) == 1 + fetched.ranges and all(token is None for _, token in seen)


def test_an_unknown_method_is_refused_before_any_request():
    source = HttpSource("http://127.0.0.1:9/never-asked.zip")
    with pytest.raises(ValueError, match="unknown read method 'fast'"):
        pick(source, [Member("a", 0, 10, 10, 0)], 100, RangedReads(method="fast"))
    assert source.counter.requests == 0


def test_ranged_reads_take_the_proxy_from_the_environment_as_requests_does(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "localhost")
    assert isinstance(_pool_for("http://upstream.test/a.zip", "ua"), urllib3.ProxyManager)  # no request is sent
    assert not isinstance(_pool_for("http://localhost/a.zip", "ua"), urllib3.ProxyManager)
