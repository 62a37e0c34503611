"""Classify upstream errors as permanent or transient, and retry transient ones with backoff."""

import errno
import random
import time
import zipfile
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")

PERMANENT_STATUS = {400, 401, 403, 404, 410, 451}


class Unavailable(Exception):
    """Permanent: the upstream does not have this file (or will never give it to us)."""

    def __init__(self, error_class: str, message: str):
        super().__init__(message)
        self.error_class = error_class


@dataclass(frozen=True)
class Verdict:
    transient: bool
    error_class: str
    message: str
    retry_after: float | None = None


def status_of(error: BaseException) -> int | None:
    for candidate in (error, getattr(error, "response", None)):
        for attribute in ("status", "status_code"):
            value = getattr(candidate, attribute, None)
            if isinstance(value, int):
                return value
    return None


def retry_after_of(error: BaseException) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or getattr(error, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def classify(error: BaseException) -> Verdict:
    if isinstance(error, Unavailable):
        return Verdict(False, error.error_class, str(error))
    status = status_of(error)
    if status is not None and 300 <= status < 400:
        # a client gives up on redirects only when they loop (or chain past its limit): retrying loops again
        return Verdict(False, "redirect_loop", f"HTTP {status} redirects without end: {error}")
    if status is not None:
        kind = "http_%d" % status
        return Verdict(status not in PERMANENT_STATUS, kind, f"HTTP {status}: {error}", retry_after_of(error))
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return Verdict(True, "disk_full", f"no space left on the device of ROOT while staging: {error}")
    if isinstance(error, zipfile.BadZipFile):
        return Verdict(True, "corrupt_archive", str(error))
    # Resets, timeouts, truncated bodies and anything unknown are worth another try.
    return Verdict(True, type(error).__name__, str(error) or type(error).__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        wait = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt) * (0.5 + random.random())
        return max(wait, retry_after or 0.0)

    def call(self, action: Callable[[], T], on_retry: Callable[[Verdict, float], None] | None = None) -> T:
        """Run `action`, retrying transient errors; the last error is raised as is."""
        for attempt in range(self.attempts):
            try:
                return action()
            except Exception as error:  # noqa: BLE001 - classified below, re-raised when final
                verdict = classify(error)
                # a full disk stays full for seconds: the partition fails and is re-run later
                if not verdict.transient or verdict.error_class == "disk_full" or attempt == self.attempts - 1:
                    raise
                wait = self.delay(attempt, verdict.retry_after)
                if on_retry:
                    on_retry(verdict, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")


def record_error(log, targets: Iterable[str], error: BaseException) -> None:
    """Record a final error for each of `targets` as unavailable (permanent) or failed (transient)."""
    verdict = classify(error)
    for target in targets:
        (log.failed if verdict.transient else log.unavailable)(target, verdict.error_class, verdict.message)
