"""The fetch ledger: the staging files a partition's fetcher writes and the outcome of every target,
which the source asset hands to the dataset IO manager."""

from __future__ import annotations

import shutil
import threading
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from encord_assets.lazy import pl
from encord_assets.progress import Progress

if TYPE_CHECKING:
    from encord_assets.operations.verified import StagedVerifier, Verified


class Outcome(StrEnum):
    PLACED = "placed"
    ALREADY_PRESENT = "already_present"
    UNAVAILABLE = "unavailable"  # permanent: 404/403, removed video, not in the archive, undecodable
    FAILED = "failed"  # transient after retries: the partition fails so it is retried
    REJECTED = "rejected"


RESULT_SCHEMA = {
    "target": str,
    "outcome": str,
    "staged_path": str,
    "expected_size": int,
    "bytes": int,
    "sha256": str,
    "error_class": str,
    "error_message": str,
}


class FetchLedger:
    """Hands out staging files and collects, thread-safely, what a fetcher did for each target of one partition."""

    def __init__(self, staging_dir: Path, progress: Progress | None = None, verifier: StagedVerifier | None = None):
        self.staging_dir = staging_dir
        self.progress = progress
        # verifies each staged file while the fetcher goes on (operations/verified.py)
        self.verifier = verifier
        self.bytes_fetched = 0
        self.requests = 0
        self.notes: dict[str, int] = {}
        # archive -> (read method, why it was chosen)
        self.choices: dict[str, tuple[str, str]] = {}
        self._results: dict[str, dict] = {}
        self._lock = threading.Lock()

    def staging_path(self, suffix: str = "") -> Path:
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        return self.staging_dir / f"{uuid.uuid4().hex}{suffix}.part"

    def _record(self, target: str, **result) -> None:
        with self._lock:
            new = target not in self._results
            self._results[target] = {"target": target, **result}
        if self.progress and new:
            self.progress.advance(targets=1)

    def staged(self, target: str, path: Path, expected_size: int | None = None) -> None:
        """`path` holds the target's bytes, finished: the fetcher does not write it again."""
        self._record(target, outcome="staged", staged_path=str(path), expected_size=expected_size)
        if self.verifier is not None:
            self.verifier.submit(target, path)

    def staged_all(self, targets: list[str], path: Path, expected_size: int | None = None) -> None:
        """Stage one fetched file for several targets (rows sharing an upstream file): local copies."""
        first, *others = targets
        self.staged(first, path, expected_size)
        for target in others:
            self.staged_copy(target, first)

    def staged_copy(self, target: str, staged_target: str) -> None:
        """Stage `target` as a local copy of what was already staged for `staged_target`."""
        source = self._results[staged_target]
        path = self.staging_path()
        shutil.copyfile(source["staged_path"], path)
        self.staged(target, path, source["expected_size"])

    def unavailable(self, target: str, error_class: str, message: str) -> None:
        self._record(target, outcome=Outcome.UNAVAILABLE.value, error_class=error_class, error_message=message)

    def failed(self, target: str, error_class: str, message: str) -> None:
        self._record(target, outcome=Outcome.FAILED.value, error_class=error_class, error_message=message)

    def fetched(self, nbytes: int, requests: int = 1) -> None:
        with self._lock:
            self.bytes_fetched += nbytes
            self.requests += requests
        if self.progress:
            self.progress.advance(nbytes=nbytes)

    def note(self, name: str, count: int = 1) -> None:
        with self._lock:
            self.notes[name] = self.notes.get(name, 0) + count

    def chose(self, archive: str, method: str, reason: str) -> None:
        with self._lock:
            self.choices[archive] = (method, reason)

    def choice_metadata(self) -> dict:
        """`read_method` (per archive when they differ) and `read_reason`, for the partition's materialization."""
        with self._lock:
            choices = dict(self.choices)
        if not choices:
            return {}
        methods = [method for method, _ in choices.values()]
        counts = {method: methods.count(method) for method in dict.fromkeys(methods)}
        shown = next(iter(counts)) if len(counts) == 1 else ", ".join(f"{m} x{n}" for m, n in counts.items())
        reasons = [f"{archive}: {reason}" for archive, (_, reason) in sorted(choices.items())[:20]]
        if len(choices) > 20:
            reasons.append(f"... and {len(choices) - 20} more archives")
        return {"read_method": shown, "read_reason": "\n".join(reasons)}

    def verified(self) -> dict[str, Verified]:
        """The staged files verified while fetching, by staged path (waits for the verifier to finish)."""
        return self.verifier.results() if self.verifier is not None else {}

    def stop_verifying(self) -> None:
        if self.verifier is not None:
            self.verifier.cancel()

    def has_result(self, target: str) -> bool:
        with self._lock:
            return target in self._results

    def results(self) -> pl.DataFrame:
        with self._lock:
            return pl.DataFrame(list(self._results.values()), schema=RESULT_SCHEMA)


@dataclass
class PartitionFetch:
    """A source asset's output: the partition's infos rows and what became of each target."""

    asset_name: str
    partition_key: str
    rows: pl.DataFrame  # normalized infos rows of the partition
    prior: pl.DataFrame  # RESULT_SCHEMA rows settled before fetching (present files, known-unavailable)
    ledger: FetchLedger
    elapsed_seconds: float = 0.0
