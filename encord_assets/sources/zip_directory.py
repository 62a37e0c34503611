"""A zip's central directory, read by two ranges of a `ranged_reads.Source` and parsed into a polars table.

zipfile builds a ZipInfo per entry (decoding its extra fields, times and names): 0.96 s for a
generated zip of 168k entries (as many as a real Open Images mask zip) on the shared 2-core machine
(load average 5.8). Here every record's fixed fields are gathered at once with numpy (0.12 s for the
same), and only the few entries that need it are read one by one: ZIP64 fields (a 32-bit field of
0xFFFFFFFF) and names that are not UTF-8. Names are kept as the archive spells them (zipfile cuts
them at a NUL; the safety checks see the whole name instead).
"""

from __future__ import annotations

import io
import struct
import zipfile

from encord_assets.lazy import np, pa, pl
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

# (column, offset in the record, width) of the central directory record's fields read
FIELDS = (
    ("flags", 8, 2),
    ("compress_type", 10, 2),
    ("crc", 16, 4),
    ("compress_size", 20, 4),
    ("file_size", 24, 4),
    ("name_length", 28, 2),
    ("external_attr", 38, 4),
    ("header_offset", 42, 4),
)
# Python types (polars maps them to String and Int64): polars is not imported with the module
SCHEMA = {
    "name": str,
    "header_offset": int,
    "compress_size": int,
    "file_size": int,
    "crc": int,
    "compress_type": int,
    "external_attr": int,
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


def _field(data: "np.ndarray", offsets: "np.ndarray", at: int, width: int) -> "np.ndarray":
    """The little-endian unsigned field of `width` bytes at `offsets + at`, for every offset at once."""
    gathered = data[offsets[:, None] + at + np.arange(width)]
    return gathered.view(f"<u{width}").ravel().astype(np.int64)


def _chain(data: "np.ndarray", entries: int) -> "np.ndarray | None":
    """The offsets of the `entries` records, found at once: every place the signature occurs, kept when
    each one's record ends where the next begins (a name holding the signature breaks that: None)."""
    if entries == 0:
        return np.zeros(0, dtype=np.int64)
    found = np.flatnonzero((data[:-3] == 0x50) & (data[1:-2] == 0x4B) & (data[2:-1] == 1) & (data[3:] == 2)) if len(data) > 3 else []
    if len(found) != entries or found[0] != 0 or found[-1] + CENTRAL.size > len(data):
        return None
    ends = found + CENTRAL.size + _field(data, found, 28, 2) + _field(data, found, 30, 2) + _field(data, found, 32, 2)
    return found if np.array_equal(ends[:-1], found[1:]) and ends[-1] <= len(data) else None


def _walk(data: bytes, entries: int) -> "np.ndarray":
    """The offsets of the records, one after the other (what `_chain` cannot vouch for)."""
    offsets, position = [], 0
    for _ in range(entries):
        if position + CENTRAL.size > len(data):
            raise zipfile.BadZipFile(f"the central directory ends after {len(offsets)} of its {entries} entries")
        record = CENTRAL.unpack_from(data, position)
        if record[0] != CENTRAL_SIGNATURE:
            raise zipfile.BadZipFile(f"no central directory entry at byte {position} of the directory (entry {len(offsets)})")
        offsets.append(position)
        position += CENTRAL.size + record[12] + record[13] + record[14]
    if position > len(data):
        raise zipfile.BadZipFile(f"the central directory's last entry runs past its {len(data)} bytes")
    return np.array(offsets, dtype=np.int64)


def parse_directory(data: bytes, entries: int) -> pl.DataFrame:
    """The `entries` central directory records in `data`, one row each (SCHEMA). Fields are gathered
    for all records at once (numpy); names, ZIP64 fields and non-UTF-8 names are then fixed up per
    record only where needed."""
    array = np.frombuffer(data, dtype=np.uint8)
    offsets = _chain(array, entries)
    if offsets is None:
        offsets = _walk(data, entries)
    fields = {name: _field(array, offsets, at, width) for name, at, width in FIELDS}
    name_lengths = fields.pop("name_length")
    starts = offsets + CENTRAL.size
    ends = np.cumsum(name_lengths)
    name_bytes = array[np.repeat(starts - (ends - name_lengths), name_lengths) + np.arange(ends[-1] if len(ends) else 0)]
    names = pl.Series("name", pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(offsets), [None, pa.py_buffer(np.concatenate([[0], ends]).astype(np.int64)), pa.py_buffer(name_bytes.tobytes())]
    )).cast(pl.String, strict=False)  # fmt: skip
    # names to decode one by one: not UTF-8 (cp437 unless flagged), or ZIP64 fields to read from the extra field
    high = np.zeros(len(offsets), dtype=bool)
    high[np.repeat(np.arange(len(offsets)), name_lengths)[name_bytes >= 0x80]] = True
    utf8 = (fields.pop("flags") & UTF8_FLAG) != 0
    full = [fields[name] == FULL32 for name in ("file_size", "compress_size", "header_offset")]
    names = names.to_list() if (odd := np.flatnonzero((high & ~utf8) | names.is_null().to_numpy() | full[0] | full[1] | full[2])).size else names
    for row in odd:
        start, length = int(starts[row]), int(name_lengths[row])
        name = data[start : start + length].decode("utf-8" if utf8[row] else "cp437", errors="replace")
        names[row] = name
        wanted = [bool(f[row]) for f in full]
        if any(wanted):
            extra_length = int(_field(array, offsets[row : row + 1], 30, 2)[0])
            values = iter(_zip64_fields(data[start + length : start + length + extra_length], wanted, name))
            for key, flag in zip(("file_size", "compress_size", "header_offset"), wanted):
                if flag:
                    fields[key][row] = next(values)
    return pl.DataFrame({"name": names, **{name: fields[name] for name in SCHEMA if name != "name"}}, schema=SCHEMA)


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
