"""Progress of a long partition, logged at a steady cadence rather than once per file."""

import threading
import time
from typing import Callable


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """Counts settled targets and upstream bytes; calls `report` at most once per `every_seconds`."""

    def __init__(self, total: int, report: Callable[[str], None], every_seconds: float = 30.0, clock=time.monotonic):
        self.total = total
        self.report = report
        self.every_seconds = every_seconds
        self.clock = clock
        self.started = self.last = clock()
        self.done = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def advance(self, targets: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.done += targets
            self.bytes += nbytes
            now = self.clock()
            if now - self.last < self.every_seconds:
                return
            self.last = now
            message = self.message(now)
        self.report(message)

    def message(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        eta = _duration((self.total - self.done) / rate) if rate else "unknown"
        percent = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"progress: {self.done}/{self.total} files ({percent:.1f}%), {rate:.2f} files/s, "
            f"{self.bytes / elapsed / 1e6:.2f} MB/s fetched, ETA {eta}"
        )
