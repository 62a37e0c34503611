"""Settings of the retry sensors, fill schedules, checks and progress logs."""

import os

import dagster as dg


def int_setting(name: str, default: int):
    return dg.EnvVar.int(name) if name in os.environ else default


def read_int(name: str, default: int) -> int:
    """A number read when the definitions load (sensor intervals)."""
    return int(os.environ.get(name, default))


def switch(name: str, default: bool) -> bool:
    """An on/off setting read when the definitions load (default status of sensors and schedules)."""
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "on", "yes")


class Operations(dg.ConfigurableResource):
    """How hard and how often failed or missing partitions are re-requested, and check tolerances."""

    # run requests per partition the retry sensor makes before it gives up (the partition is "exhausted")
    max_attempts: int = 4
    # wait before attempt n+1: backoff_seconds * 2**(n-1), at most max_backoff_seconds
    backoff_seconds: int = 300
    max_backoff_seconds: int = 6 * 3600
    # run requests one sensor or schedule tick may make
    max_requests_per_tick: int = 10
    # a clip's decoded duration may differ from end_time - start_time by this much
    duration_tolerance_ms: int = 500
    # a long partition logs its progress this often
    progress_seconds: int = 30

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th request before the next one (none before the first)."""
        if attempts <= 0:
            return 0.0
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempts - 1)))


def operations_resource() -> Operations:
    return Operations(
        max_attempts=int_setting("ENCORD_RETRY_MAX_ATTEMPTS", 4),
        backoff_seconds=int_setting("ENCORD_RETRY_BACKOFF_SECONDS", 300),
        max_backoff_seconds=int_setting("ENCORD_RETRY_MAX_BACKOFF_SECONDS", 6 * 3600),
        max_requests_per_tick=int_setting("ENCORD_MAX_REQUESTS_PER_TICK", 10),
        duration_tolerance_ms=int_setting("ENCORD_DURATION_TOLERANCE_MS", 500),
        progress_seconds=int_setting("ENCORD_PROGRESS_SECONDS", 30),
    )
