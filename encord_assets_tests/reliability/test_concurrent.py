"""Promise 5: two runs of the same partition at once (two `dagster asset materialize` processes) leave
one correct set of files and one manifest consistent with them."""

import os

import polars as pl
import pytest

from encord_assets.layout.paths import bookkeeping_key, manifest_key
from encord_assets.materialize import Materializer
from encord_assets_tests.reliability.support import (
    TESTED_SPECS,
    layout_files,
    manifest,
    prepare,
    staging_leftovers,
    store_of,
    start_materialize,
)

pytestmark = pytest.mark.long_running


def test_two_runs_of_one_partition_at_once(packed, packed_mirror, any_root, instance, tmp_path):
    root = any_root
    materializer = Materializer(instance)
    prepare(materializer, TESTED_SPECS)
    # one partition each, run twice at once; latency keeps the two runs overlapping
    # one fetcher per pool (http, youtube, huggingface): the placement under test is shared by all fetchers
    fetchers = {spec.pool: spec.fetcher for spec in reversed(TESTED_SPECS)}.values()
    partitions = [max(packed.partitions[f], key=lambda p: packed.rows.filter(pl.col("source") == p[0]).height) for f in sorted(fetchers)]
    packed_mirror.set_faults(0.0, latency_seconds=0.2)
    env = {**os.environ, "COCO_THREADS": "2", "YOUTUBE_THREADS": "2"}
    processes = [
        (asset, key, start_materialize(asset, key, tmp_path / f"{asset}-{n}.log", env)) for asset, key in partitions for n in range(2)
    ]
    codes = [(asset, process.wait()) for asset, key, process in processes]
    assert all(code == 0 for _, code in codes), [(a, (tmp_path / f"{a}-0.log").read_text()[-2000:]) for a, c in codes if c]

    wanted = packed.rows.join(pl.DataFrame(partitions, schema=["source", "partition_key"], orient="row"), on=["source", "partition_key"])
    files = layout_files(root)
    assert files == {t: packed.reference[t] for t in wanted["target"]}
    for asset, key in partitions:
        found = manifest(root, asset, key)
        rows = wanted.filter(pl.col("source") == asset)
        assert sorted(found["target"]) == sorted(rows["target"])
        assert set(found["outcome"]) <= {"placed", "already_present"}
        assert all(files[t] == sha for t, sha in found.select("target", "sha256").iter_rows())
        # nothing but the manifest beside it (no temporary file left by either run)
        assert list(store_of(root).find(bookkeeping_key("manifests", asset))) == [manifest_key(asset, key)]
    assert staging_leftovers(root) == []
    print(f"\nconcurrent ({root}): {len(processes)} runs of {len(partitions)} partitions, two at a time each, {wanted.height} rows")
