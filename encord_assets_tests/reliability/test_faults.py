"""Promise 1: with 20% of upstream requests faulty, every valid row ends placed, with the right bytes,
and no row is fetched again once placed. Runs over every fetcher of the registry."""

import polars as pl
import pytest

from encord_assets.materialize import Materializer
from encord_assets_tests.reliability.support import (
    fetcher_variants,
    layout_files,
    manifest,
    prepare,
    settle,
    specs_of,
    staging_leftovers,
)

FAULT_RATE = 0.2
VARIANTS = fetcher_variants()


@pytest.mark.parametrize(("fetcher", "settings"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_transient_faults_end_with_every_row_placed(fetcher, settings, packed, packed_mirror, materializer, root, monkeypatch):
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    materializer = Materializer(materializer.instance)  # the settings are read when definitions are built
    prepare(materializer, specs_of(fetcher))
    partitions = packed.partitions[fetcher]
    wanted = packed.rows.filter(pl.col("source").is_in([asset for asset, _ in partitions]))

    # every kind of fault, and stalls longer than the clients' (short) timeouts
    packed_mirror.set_faults(FAULT_RATE, retry_after=0.2, stall_seconds=1.5, seed=7)
    rounds = settle(materializer, root, partitions, max_rounds=8)
    stats = packed_mirror.stats()
    packed_mirror.set_faults(0.0)

    outcomes = pl.concat([manifest(root, asset, key) for asset, key in partitions])
    problems = outcomes.filter(~pl.col("outcome").is_in(["placed", "already_present"]))
    assert problems.select("target", "outcome", "error_class", "error_message").to_dicts() == []
    # each placed file is the fault-free run's file, byte for byte
    assert layout_files(root) == {t: packed.reference[t] for t in wanted["target"]}
    # placed once: a target placed in one round is never placed (fetched) again in a later one
    seen: set[str] = set()
    for round_placed in rounds:
        now = set().union(*round_placed.values())
        assert not (now & seen)
        seen |= now
    assert seen == set(wanted["target"])
    assert staging_leftovers(root) == []
    print(
        f"\n{fetcher} {settings}: {wanted.height} rows in {len(partitions)} partitions, {stats['requests']} requests, "
        f"{stats['faults_injected']} faults injected, {len(rounds)} round(s), {sum(len(r) for r in rounds[1:])} partition re-run(s)"
    )
