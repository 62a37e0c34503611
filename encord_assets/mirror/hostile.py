"""Hostile archives for the mirror: members that escape or are links, and a central directory that lies."""

import stat
import struct
import zipfile
from pathlib import Path

from encord_assets.mirror.media import FIXED_DATE, write_zip


def escaping_zip(path: Path, members: dict[str, bytes], link: str, oversized: str) -> None:
    """`members` plus members that escape (`../`, absolute), `link` as a symbolic link to /etc/passwd,
    and `oversized` whose central directory entry claims 4 GB, far beyond the file."""
    escaping = {"../../escaped.jpg": b"escaped", "/tmp/encord-assets-absolute-member.jpg": b"absolute", "train2017/../../../up.jpg": b"up"}
    write_zip(path, {**escaping, **members, oversized: b"small"})
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo(link, FIXED_DATE)
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "../../../../etc/passwd")
    data = bytearray(path.read_bytes())
    # the central directory entry of `oversized` (its name's first occurrence after the directory starts):
    # compressed and uncompressed sizes at +20 and +24; 0xF0000000 stays below the zip64 marker
    central = data.index(oversized.encode(), data.index(b"PK\x01\x02"))
    header = data.rindex(b"PK\x01\x02", 0, central)
    struct.pack_into("<II", data, header + 20, 0xF0000000, 0xF0000000)
    path.write_bytes(bytes(data))
