from encord_assets.ledger import FetchLedger
from encord_assets.progress import Progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_reported_at_a_steady_cadence_not_per_file(tmp_path):
    clock, lines = Clock(), []
    log = FetchLedger(tmp_path, Progress(1000, lines.append, every_seconds=30, clock=clock))
    for n in range(1000):
        clock.now = n * 0.1  # 10 files a second for 100 seconds
        log.fetched(1_000_000)
        log.unavailable(f"t{n}", "http_404", "gone")
        log.unavailable(f"t{n}", "http_404", "gone")  # a second record for a target is not progress
    assert len(lines) == 3  # at 30, 60 and 90 seconds
    assert lines[0] == "progress: 300/1000 files (30.0%), 10.00 files/s, 10.03 MB/s fetched, ETA 1m10s"
