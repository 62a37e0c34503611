"""The central directory parser against zipfile: plain, ZIP64 and unicode-named archives, a long comment,
generated archives (hypothesis), and reads of exactly the end record and the directory."""

import io
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from encord_assets.ledger import FetchLedger
from encord_assets.sources.ranged_reads import FileSource
from encord_assets.sources.zip_directory import TAIL_BYTES, UTF8_FLAG, parse_directory, read_directory
from encord_assets.sources.zip_members import table_members


def zip_bytes(members: list[tuple[str, bytes, int]], comment: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data, method in members:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
        zf.comment = comment
    return buffer.getvalue()


def as_zipfile_sees_it(data: bytes) -> list[tuple]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, i.header_offset, i.compress_size, i.file_size, i.CRC, i.compress_type, i.external_attr) for i in zf.infolist()]


def source_of(data: bytes) -> FileSource:
    return FileSource(lambda: io.BytesIO(data), len(data))


def parsed(data: bytes) -> list[tuple]:
    return list(read_directory(source_of(data), len(data)).iter_rows())


def test_a_plain_archive_with_unicode_names_and_both_methods():
    members = [("a.txt", b"hello" * 100, zipfile.ZIP_DEFLATED), ("dir/été ☃.bin", bytes(range(256)), zipfile.ZIP_STORED), ("dir/", b"", 0)]
    data = zip_bytes(members)
    assert parsed(data) == as_zipfile_sees_it(data)


def test_zip64_sizes_offsets_and_end_records(monkeypatch):
    # ZIP64 fields need 4 GB members or 65,535 entries; lowering zipfile's limits while writing makes
    # it write them for a small archive (0xFFFFFFFF in the directory, the values in the ZIP64 extra)
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1000)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 5)
    data = zip_bytes([(f"m{i}.bin", bytes([i]) * (700 + 300 * i), zipfile.ZIP_STORED) for i in range(8)])
    monkeypatch.undo()
    assert b"\xff\xff\xff\xff" in data and zipfile.stringEndArchive64 in data
    seen = as_zipfile_sees_it(data)
    assert any(offset > 1000 for _, offset, *_ in seen)
    assert parsed(data) == seen


def test_a_long_comment_costs_one_more_read_and_the_rest_is_exact():
    data = zip_bytes([("a.bin", b"x" * 5000, zipfile.ZIP_STORED)], comment=b"c" * 30_000)
    source = source_of(data)
    assert list(read_directory(source, len(data)).iter_rows()) == as_zipfile_sees_it(data)
    # the last KB (no end record in it), the last 65 KB (the directory is in it too)
    assert source.counter.requests == 2 and source.counter.bytes == TAIL_BYTES + len(data)


def test_a_large_archive_reads_the_end_record_then_exactly_the_directory():
    data = zip_bytes([(f"{i:05d}.png", bytes([i % 256]) * 3000, zipfile.ZIP_STORED) for i in range(400)])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        directory = len(data) - zf.start_dir - 22
    source = source_of(data)
    assert list(read_directory(source, len(data)).iter_rows()) == as_zipfile_sees_it(data)
    assert source.counter.requests == 2 and source.counter.bytes == TAIL_BYTES + directory


def test_a_directory_that_lies_about_its_entries_is_an_error():
    data = zip_bytes([("a.bin", b"x", zipfile.ZIP_STORED)])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        directory = data[zf.start_dir : len(data) - 22]
    with pytest.raises(zipfile.BadZipFile, match="ends after 1 of its 2 entries"):
        parse_directory(directory, 2)
    with pytest.raises(zipfile.BadZipFile, match="no central directory entry"):
        parse_directory(b"PK\x03\x04" + directory[4:], 1)


NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40)
MEMBERS = st.lists(
    st.tuples(NAMES, st.binary(max_size=3000), st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])),
    max_size=12,
    unique_by=lambda member: member[0],
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MEMBERS, st.binary(max_size=2000))
def test_generated_archives_parse_as_zipfile_parses_them(members, comment):
    data = zip_bytes(members, comment)
    assert parsed(data) == as_zipfile_sees_it(data)


def test_names_that_hold_the_signature_or_are_not_utf8_parse_as_zipfile_parses_them():
    data = bytearray(zip_bytes([("a-PK\x01\x02-b.bin", b"x" * 10, 0), ("façade.txt", b"y", 0), ("plain.txt", b"z", 0)]))
    # a name without the UTF-8 flag is cp437: clear the flag of the directory's entries
    position = data.find(zipfile.stringCentralDir)
    while position != -1:
        data[position + 9] &= ~(UTF8_FLAG >> 8)
        position = data.find(zipfile.stringCentralDir, position + 4)
    data = bytes(data)
    seen = as_zipfile_sees_it(data)
    assert seen[1][0] != "façade.txt" and parsed(data) == seen


def test_the_members_a_partition_names_are_judged_from_the_table(tmp_path):
    data = zip_bytes([("../evil.png", b"x", 0), ("a_b.png", b"y", 0), ("fine.png", b"z" * 10, 0), ("other.png", b"w", 0)])
    # a NUL in a name (zipfile would cut the name there; the table keeps it, so the name check sees it)
    data = data.replace(b"a_b.png", b"a\x00b.png")
    table = read_directory(source_of(data), len(data))
    log = FetchLedger(tmp_path)
    members = table_members(table, ["../evil.png", "a\x00b.png", "fine.png"], len(data), log, 1 << 20)
    assert list(members) == ["fine.png"] and members["fine.png"].file_size == 10
    assert set(members.refused) == {"../evil.png", "a\x00b.png"} and log.notes == {"refused_unsafe_members": 2}
