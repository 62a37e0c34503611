"""Real, small, deterministic media for the mirror: the same id always gives the same bytes."""

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

FIXED_DATE = (2017, 1, 1, 0, 0, 0)


def seed_of(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def jpeg_bytes(key: str, width: int = 96, height: int = 64) -> bytes:
    """A real JPEG whose pixels (and so bytes) depend only on `key`."""
    seed = seed_of(key)
    base = [(seed >> shift) & 0xFF for shift in (0, 8, 16)]
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([(base[0] + x * 3) % 256, (base[1] + y * 5) % 256, (base[2] + (x * y) % 97) % 256], axis=-1)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def write_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> None:
    """A zip with fixed timestamps (byte-identical on every build), members in the given order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".building")
    with zipfile.ZipFile(tmp, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, FIXED_DATE), data, compress_type=compression)
    tmp.replace(path)


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
