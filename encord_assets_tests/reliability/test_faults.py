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

pytestmark = pytest.mark.long_running

FAULT_RATE = 0.2
VARIANTS = fetcher_variants()
# on an s3:// ROOT (uploads faulty too), a subset: single images, and clips uploaded in parts
ON_OBJECT_STORAGE = ("coco-images", "youtube")
CASES = [(*variant, "local") for variant in VARIANTS] + [(*variant, "s3") for variant in VARIANTS if variant[0] in ON_OBJECT_STORAGE]


@pytest.mark.parametrize(("fetcher", "settings", "where"), [c[1:] for c in CASES], ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_transient_faults_end_with_every_row_placed(fetcher, settings, where, packed, packed_mirror, instance, request, monkeypatch):
    root = request.getfixturevalue("root" if where == "local" else "s3_root")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    materializer = Materializer(instance)  # the settings are read when definitions are built
    prepare(materializer, specs_of(fetcher))
    partitions = packed.partitions[fetcher]
    wanted = packed.rows.filter(pl.col("source").is_in([asset for asset, _ in partitions]))

    # every kind of fault, and stalls longer than the clients' (short) timeouts
    packed_mirror.set_faults(FAULT_RATE, retry_after=0.2, stall_seconds=1.5, seed=7)
    objectstore = request.getfixturevalue("objectstore") if where == "s3" else None
    if objectstore is not None:  # 503 SlowDown, resets and cut responses on uploads as well
        objectstore.set_faults(FAULT_RATE, kinds=("503", "reset", "truncate"), seed=7)
    rounds = settle(materializer, root, partitions, max_rounds=8)
    stats = packed_mirror.stats()
    packed_mirror.set_faults(0.0)
    if objectstore is not None:
        assert objectstore.stats()["faults_injected"] > 0
        objectstore.set_faults(0.0)

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
        f"\n{fetcher} {settings} ({where} ROOT): {wanted.height} rows in {len(partitions)} partitions, {stats['requests']} requests, "
        f"{stats['faults_injected']} faults injected, {len(rounds)} round(s), {sum(len(r) for r in rounds[1:])} partition re-run(s)"
    )
