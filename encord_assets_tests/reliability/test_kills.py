"""Promise 2: `dagster asset materialize` killed with SIGKILL at random moments leaves no partial or
temporary file at any final path; the next run removes the killed run's staging and completes."""

import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pytest

from encord_assets.materialize import Materializer
from encord_assets_tests.reliability.support import (
    FETCHERS,
    TESTED_SPECS,
    layout_files,
    manifest,
    prepare,
    staging_dir,
    staging_leftovers,
    start_materialize,
)

pytestmark = pytest.mark.long_running

KILL_POINTS = 10
# what slows a partition enough to be killed in the middle of it (every request waits this long)
LATENCY_SECONDS = 0.25


def kill_at_random_moment(root, asset, key, log_path, rng, env) -> str:
    """Start the CLI, wait until its run has a staging folder, SIGKILL it a random moment later."""
    staging = staging_dir(root, asset, key)
    before = set(staging.iterdir()) if staging.exists() else set()
    process = start_materialize(asset, key, log_path, env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if staging.exists() and set(staging.iterdir()) - before:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.5))
        if process.poll() is not None:
            return "finished before the kill"
        os.killpg(process.pid, signal.SIGKILL)
        return "killed"
    finally:
        process.wait()


def check_layout(root, reference) -> None:
    """Every file at a final path is a complete file of the reference run: no partial or temporary file."""
    for target, sha in layout_files(root).items():
        assert reference.get(target) == sha, target


# on an s3:// ROOT, the kills go to single images and to clips uploaded in parts
ON_OBJECT_STORAGE = ("coco", "youtube")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_sigkill_at_random_moments_then_rerun(where, packed, packed_mirror, instance, request, tmp_path):
    root = request.getfixturevalue("root" if where == "local" else "s3_root")
    materializer = Materializer(instance)
    prepare(materializer, TESTED_SPECS)
    packed_mirror.set_faults(0.0, latency_seconds=LATENCY_SECONDS)
    fetchers = FETCHERS if where == "local" else [f for f in FETCHERS if f in ON_OBJECT_STORAGE]
    chains = {fetcher: packed.partitions[fetcher] for fetcher in fetchers}
    kill_points = KILL_POINTS if where == "local" else 6
    per_chain = -(-kill_points // len(chains))
    lock = threading.Lock()
    outcomes: list[tuple[str, str, str]] = []

    def chain(fetcher: str) -> None:
        rng = random.Random(fetcher)
        env = {**os.environ, "COCO_THREADS": "1", "YOUTUBE_THREADS": "1"}
        partitions = chains[fetcher]
        killed = 0
        # a run that finishes before its kill moment does not count: the next one is killed instead
        for point in range(3 * per_chain):
            if killed == per_chain:
                break
            asset, key = partitions[point % len(partitions)]
            what = kill_at_random_moment(root, asset, key, tmp_path / f"{fetcher}.log", rng, env)
            killed += what == "killed"
            with lock:
                check_layout(root, packed.reference)
                outcomes.append((asset, key, what))

    with ThreadPoolExecutor(len(chains)) as pool:
        list(pool.map(chain, chains))
    kills = [o for o in outcomes if o[2] == "killed"]
    assert len(kills) >= kill_points, outcomes
    assert staging_leftovers(root)  # the killed runs left their staging behind ...

    packed_mirror.set_faults(0.0)
    for fetcher in fetchers:
        for asset, key in packed.partitions[fetcher]:
            assert materializer.run(asset, key).success, (asset, key)
            assert set(manifest(root, asset, key)["outcome"]) <= {"placed", "already_present"}
    assert staging_leftovers(root) == []  # ... and the next runs removed it
    wanted = packed.rows.filter(pl.col("source").is_in([asset for f in fetchers for asset, _ in packed.partitions[f]]))
    assert layout_files(root) == {t: packed.reference[t] for t in wanted["target"]}
    if where == "s3":  # ... and aborted the multipart uploads the kills left
        bucket = root.split("/")[2]
        assert request.getfixturevalue("objectstore").client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    print(f"\n{where} ROOT: {len(kills)} kills, {len(outcomes) - len(kills)} runs finished first, over {sum(len(p) for p in chains.values())} partitions")
