"""The Operations resource: how hard and how often failed or missing partitions are re-requested,
and check tolerances."""

import dagster as dg

from encord_assets.settings import resource_config


class Operations(dg.ConfigurableResource):
    """How hard and how often failed or missing partitions are re-requested, and check tolerances."""

    # run requests per partition the retry sensor makes before it gives up (the partition is "exhausted")
    max_attempts: int = 4
    # wait before attempt n+1: backoff_seconds * 2**(n-1), at most max_backoff_seconds
    backoff_seconds: int = 300
    max_backoff_seconds: int = 6 * 3600
    # run requests one sensor or schedule tick may make
    max_requests_per_tick: int = 10
    # a fill sensor tick starts on another source only while it has run for less than this
    fill_tick_seconds: int = 3
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
    return Operations(**resource_config("operations"))
