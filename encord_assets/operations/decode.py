"""Does a placed file decode as what its extension (or modality) says? Images with Pillow,
clips with the ffmpeg binary from imageio-ffmpeg, point clouds with numpy."""

import re
import subprocess
from pathlib import Path
from typing import Callable

CLIP_SUFFIXES = {".mp4", ".mpeg", ".mpg", ".m4a", ".webm", ".mkv", ".mov", ".mp3", ".wav", ".flac", ".ogg", ".opus", ".aac"}
_TIME = re.compile(r"time=(\d+):(\d\d):(\d\d(?:\.\d+)?)")


class Undecodable(Exception):
    pass


def decode_image(path: Path) -> dict:
    from PIL import Image  # the decoders' libraries load when a check runs, not with the code location

    try:
        with Image.open(path) as image:
            width, height = image.size
            # A JPEG decodes at 1/8 scale: every entropy-coded byte is still decoded (where damage
            # shows), only the inverse DCT is smaller; about 30% less CPU. Other formats ignore it.
            image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
            return {"width": width, "height": height}
    except Exception as error:  # noqa: BLE001 - Pillow raises many kinds for broken files
        raise Undecodable(f"not a decodable image: {error}") from error


def decode_clip(path: Path) -> dict:
    """Decode every stream to null; the last progress time is the decoded duration."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", "-xerror", "-i", str(path), "-f", "null", "-"]
    done = subprocess.run(command, capture_output=True, text=True, errors="replace")
    times = _TIME.findall(done.stderr)
    if done.returncode != 0 or not times:
        last = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise Undecodable(f"ffmpeg could not decode it (exit {done.returncode}): {last[0][:200]}")
    hours, minutes, seconds = times[-1]
    return {"duration": int(hours) * 3600 + int(minutes) * 60 + float(seconds)}


def decode_npy(path: Path) -> dict:
    import numpy as np

    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError
        raise Undecodable(f"not a loadable .npy array: {error}") from error
    return {"shape": list(array.shape)}


MODALITY_DECODERS: dict[str, Callable[[Path], dict]] = {
    "image": decode_image,
    "video": decode_clip,
    "audio": decode_clip,
    "points": decode_npy,
}


def decoder_for(path: Path, modality: str) -> Callable[[Path], dict] | None:
    """By extension first (a source may place any kind of file), then by the row's modality."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return decode_npy
    if suffix in CLIP_SUFFIXES:
        return decode_clip
    from PIL import Image

    if suffix in Image.registered_extensions():
        return decode_image
    return MODALITY_DECODERS.get(modality)


def decoding_problem(path: Path, target: str, modality: str, expected_duration: float | None = None, tolerance: float = 0.0) -> str | None:
    """Why the local file `path`, placed (or to be placed) as `target`, does not decode as what it
    should, or None: the one test of the `files_decode` check and of staged files' verification.
    A clip must also last `expected_duration` within `tolerance` seconds when a duration is given."""
    decode = decoder_for(Path(target), modality)
    if decode is None:
        return None
    try:
        found = decode(path)
    except (Undecodable, OSError) as error:
        return str(error)
    if "duration" in found and expected_duration is not None and abs(found["duration"] - expected_duration) > tolerance:
        return f"decodes to {found['duration']:.2f} s, infos say {expected_duration:.2f} s"
    return None
