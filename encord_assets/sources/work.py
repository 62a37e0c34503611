"""What a fetcher gets for one partition: everything it needs, and nothing of where ROOT is."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from encord_assets.lazy import pl
from encord_assets.ledger import FetchLedger
from encord_assets.sources.registry import SourceSpec
from encord_assets.store import DatasetStore


@dataclass
class PartitionWork:
    spec: SourceSpec
    partition_key: str
    rows: pl.DataFrame  # the rows to fetch (one per target still missing)
    ledger: FetchLedger  # hands out staging files, records each target's outcome
    store: DatasetStore  # for the fetcher's own bookkeeping under ROOT/_encord_assets/
    log: dg.DagsterLogManager
