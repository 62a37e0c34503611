"""A zip's central directory, read by two ranges of a `ranged_reads.Source` and parsed into a polars table.

zipfile builds a ZipInfo per entry (decoding its extra fields, times and names): ~18 us each, so
~0.7 s for a 40,000-member Open Images mask zip and ~3 s for a real one (~168k members). Here one
`struct` unpack per entry fills the table's columns; the ZIP64 extra field is read only for the
entries whose 32-bit fields say 0xFFFFFFFF. Names are kept as the archive spells them (zipfile
cuts them at a NUL; the safety checks see the whole name instead).
"""

from __future__ import annotations

import io
import struct
import zipfile

from encord_assets.lazy import pl
from encord_assets.sources.ranged_reads import Source

CENTRAL = struct.Struct(zipfile.structCentralDir)
CENTRAL_SIGNATURE = zipfile.stringCentralDir
ZIP64_EXTRA = 0x0001
UTF8_FLAG = 0x800
FULL32 = 0xFFFFFFFF
# the end record (ZIP64 locator and record included) fits here unless the archive has a long comment
TAIL_BYTES = 1 << 10
# ... and here whatever its comment (at most 65,535 bytes)
LONGEST_TAIL = TAIL_BYTES + (1 << 16)

SCHEMA = {
    "name": pl.String,
    "header_offset": pl.Int64,
    "compress_size": pl.Int64,
    "file_size": pl.Int64,
    "crc": pl.Int64,
    "compress_type": pl.Int32,
    "external_attr": pl.Int64,
}


def read_range(source: Source, start: int, end: int) -> bytes:
    body = source.open(start, end)
    try:
        parts, missing = [], end - start
        while missing and (data := body.read(missing)):
            parts.append(data)
            missing -= len(data)
    finally:
        body.close()
    if missing:
        raise ConnectionError(f"the upstream sent {end - start - missing} of bytes {start}-{end - 1}")
    return b"".join(parts)


def end_record(tail: bytes) -> tuple[int, int, int] | None:
    """(entries, directory size, directory offset) from the archive's last bytes; None when `tail`
    holds no end record."""
    end = zipfile._EndRecData(io.BytesIO(tail))  # zipfile's own parser of the (ZIP64) end record
    if end is None:
        return None
    return end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE], end[zipfile._ECD_OFFSET]


def _zip64_fields(extra: bytes, wanted: list[bool], name: str) -> list[int]:
    """The 64-bit values of the fields (file size, compressed size, header offset, in that order) whose
    32-bit field is full, from the ZIP64 extra block."""
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        if kind == ZIP64_EXTRA:
            count = sum(wanted)
            if length < 8 * count:
                break
            return list(struct.unpack_from(f"<{count}Q", extra, position + 4))
        position += 4 + length
    raise zipfile.BadZipFile(f"{name}: a size or offset is 0xFFFFFFFF without its ZIP64 extra field")


def parse_directory(data: bytes, entries: int) -> pl.DataFrame:
    """The `entries` central directory records in `data`, one row each (SCHEMA)."""
    names, offsets, compressed, sizes, crcs, methods, attributes = [], [], [], [], [], [], []
    unpack, position = CENTRAL.unpack_from, 0
    for _ in range(entries):
        if position + CENTRAL.size > len(data):
            raise zipfile.BadZipFile(f"the central directory ends after {len(names)} of its {entries} entries")
        record = unpack(data, position)
        if record[0] != CENTRAL_SIGNATURE:
            raise zipfile.BadZipFile(f"no central directory entry at byte {position} of the directory (entry {len(names)})")
        flags, method, crc, compress_size, file_size, name_length, extra_length, comment_length = record[5:7] + record[9:15]
        attribute, offset = record[17], record[18]
        start = position + CENTRAL.size
        name = data[start : start + name_length].decode("utf-8" if flags & UTF8_FLAG else "cp437", errors="replace")
        if FULL32 in (file_size, compress_size, offset):
            full = [file_size == FULL32, compress_size == FULL32, offset == FULL32]
            values = iter(_zip64_fields(data[start + name_length : start + name_length + extra_length], full, name))
            file_size, compress_size, offset = (next(values) if f else v for f, v in zip(full, (file_size, compress_size, offset)))
        names.append(name)
        offsets.append(offset)
        compressed.append(compress_size)
        sizes.append(file_size)
        crcs.append(crc)
        methods.append(method)
        attributes.append(attribute)
        position = start + name_length + extra_length + comment_length
    columns = (names, offsets, compressed, sizes, crcs, methods, attributes)
    return pl.DataFrame(dict(zip(SCHEMA, columns)), schema=SCHEMA)


def read_directory(source: Source, archive_size: int) -> pl.DataFrame:
    """The central directory of the zip behind `source`: its end record (one range of the last KB, or
    of the last 65 KB when a long comment hides it), then exactly the directory (one range)."""
    tail = read_range(source, max(0, archive_size - TAIL_BYTES), archive_size)
    record = end_record(tail)
    if record is None and archive_size > TAIL_BYTES:
        tail = read_range(source, max(0, archive_size - LONGEST_TAIL), archive_size)
        record = end_record(tail)
    if record is None:
        raise zipfile.BadZipFile("no end of central directory record")
    entries, size, offset = record
    if offset + size > archive_size:
        raise zipfile.BadZipFile(f"the central directory claims bytes {offset}-{offset + size} of a {archive_size}-byte archive")
    # the directory is often inside the tail already read (a small archive)
    tail_start = archive_size - len(tail)
    directory = tail[offset - tail_start : offset - tail_start + size] if offset >= tail_start else read_range(source, offset, offset + size)
    return parse_directory(directory, entries)
