"""ffmpeg from the imageio-ffmpeg package (no system ffmpeg, no ffprobe): finding it and probing clips."""

import atexit
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

_lock = threading.Lock()
_link_dir: Path | None = None


def ffmpeg_exe() -> str:
    import imageio_ffmpeg  # loaded by the first clip, not with the code location

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_on_path() -> str:
    """The path of an `ffmpeg` link to imageio-ffmpeg's binary, in a folder put first on PATH.

    yt-dlp's section downloads look `ffmpeg` up on PATH even when `ffmpeg_location` is given,
    and the binary imageio-ffmpeg ships is not named `ffmpeg`.
    """
    global _link_dir
    with _lock:
        if _link_dir is None:
            _link_dir = Path(tempfile.mkdtemp(prefix="encord-assets-ffmpeg-"))
            atexit.register(shutil.rmtree, _link_dir, ignore_errors=True)
            (_link_dir / "ffmpeg").symlink_to(ffmpeg_exe())
        folders = os.environ.get("PATH", "").split(os.pathsep)
        if folders[0] != str(_link_dir):
            os.environ["PATH"] = os.pathsep.join([str(_link_dir), *[f for f in folders if f != str(_link_dir)]])
        return str(_link_dir / "ffmpeg")


@dataclass(frozen=True)
class Probe:
    duration: float | None
    has_video: bool
    has_audio: bool
    error: str | None  # why the file does not decode (None when it decodes to the end)


_DURATION = re.compile(r"Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)")


def probe(path: Path, timeout: float = 120.0) -> Probe:
    """Decode the whole file (there is no ffprobe) and read its duration and streams from ffmpeg's report."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-xerror", "-i", str(path), "-map", "0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,  # a failure is the answer, read below
    )
    report = result.stderr
    match = _DURATION.search(report)
    duration = int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3]) if match else None
    error = None
    if result.returncode != 0:
        error = " | ".join(report.strip().splitlines()[-2:]) or f"ffmpeg exited with code {result.returncode}"
    return Probe(duration, bool(re.search(r"Stream #.*: Video:", report)), bool(re.search(r"Stream #.*: Audio:", report)), error)
