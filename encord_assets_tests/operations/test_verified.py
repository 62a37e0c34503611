"""Staged files verified while fetching: the IO manager reuses their sha256 and records them for the
checks, which then skip them; a file changed after verification is hashed and checked again."""

import hashlib
import os
import time

import dagster as dg
import polars as pl

from encord_assets.layout.io_manager import place_staged
from encord_assets.layout.paths import verified_key
from encord_assets.ledger import FetchLedger
from encord_assets.mirror.media import jpeg_bytes
from encord_assets.operations.checks import each_changed_file
from encord_assets.operations.verified import (
    BACKDATE_NS,
    FILES_DECODE,
    FILES_MATCH_MANIFEST,
    StagedVerifier,
    decode_basis,
    match_basis,
    record_placed,
    verify,
)
from encord_assets.store import DatasetStore
from encord_assets_tests.conftest import manifest_of
from encord_assets_tests.operations.test_checks import run_with_checks


def stage(ledger: FetchLedger, files: dict[str, bytes]) -> dict[str, str]:
    """Stage each target's bytes as a fetcher does; the staged path of each target."""
    paths = {}
    for target, data in files.items():
        path = ledger.staging_path()
        path.write_bytes(data)
        ledger.staged(target, path, len(data))
        paths[target] = str(path)
    return paths


def test_staged_files_are_hashed_and_decode_tested_while_fetching(tmp_path):
    good, broken = jpeg_bytes("good"), jpeg_bytes("broken")
    broken = broken[:200] + b"\0" * (len(broken) - 200)
    ledger = FetchLedger(tmp_path / "staging", verifier=StagedVerifier("image"))
    paths = stage(ledger, {"shared/image/good.jpg": good, "shared/image/broken.jpg": broken})
    verified = ledger.verified()
    assert verified[paths["shared/image/good.jpg"]].sha256 == hashlib.sha256(good).hexdigest()
    assert verified[paths["shared/image/good.jpg"]].decodes is True
    assert verified[paths["shared/image/broken.jpg"]].decodes is False
    # backdated, so that any later write shows as a change and the placed file's version is trusted at once
    assert verified[paths["shared/image/good.jpg"]].mtime_ns <= time.time_ns() - BACKDATE_NS

    # a clip's decode test needs the infos duration: hashed only, left to the check
    clip = tmp_path / "a.part"
    clip.write_bytes(b"not decoded here")
    assert verify(clip, "shared/video/a.mp4", "video").decodes is None


def test_the_io_manager_reuses_a_verified_hash_only_while_the_staged_file_is_unchanged(tmp_path):
    store = DatasetStore(root=str(tmp_path / "root"))
    ledger = FetchLedger(tmp_path / "root" / "_staging", verifier=StagedVerifier("image"))
    files = {f"shared/image/{n}.jpg": jpeg_bytes(str(n)) for n in range(3)}
    paths = stage(ledger, files)
    verified = ledger.verified()

    # rewritten after verification: a new mtime, so it is hashed again
    rewritten = "shared/image/1.jpg"
    with open(paths[rewritten], "r+b") as f:
        f.write(b"\xff\xd8\0\0")
    # written in place with its verified mtime put back: the one change this does not see (as rsync or make would not)
    hidden = "shared/image/2.jpg"
    info = os.stat(paths[hidden])
    with open(paths[hidden], "r+b") as f:
        f.write(b"\xff\xd8\0\0")
    os.utime(paths[hidden], ns=(info.st_atime_ns, info.st_mtime_ns))

    rows, reused = place_staged(store, ledger.results(), verified)
    sha256 = {row["target"]: row["sha256"] for row in rows}
    assert sha256["shared/image/0.jpg"] == hashlib.sha256(files["shared/image/0.jpg"]).hexdigest()
    assert sha256[rewritten] == hashlib.sha256((tmp_path / "root" / rewritten).read_bytes()).hexdigest() != hashlib.sha256(files[rewritten]).hexdigest()
    assert sha256[hidden] == hashlib.sha256(files[hidden]).hexdigest(), "a verified hash is reused, not computed again"
    assert sorted(reused["target"]) == ["shared/image/0.jpg", hidden]


def test_recorded_files_are_skipped_by_the_checks_and_a_file_changed_since_is_checked_again(tmp_path):
    root = tmp_path / "root"
    store = DatasetStore(root=str(root))
    ledger = FetchLedger(root / "_staging", verifier=StagedVerifier("image"))
    good = jpeg_bytes("good")
    files = {"shared/image/a.jpg": good, "shared/image/b.jpg": jpeg_bytes("b"), "shared/image/bad.jpg": good[:300] + b"\0" * 3000}
    stage(ledger, files)
    rows, reused = place_staged(store, ledger.results(), ledger.verified())
    assert record_placed(store, "image_x", "000|e-mm1_1m", reused) == 3

    rows = pl.DataFrame(rows).select("target", "bytes", "sha256").with_columns(expected_duration=pl.lit(None, pl.Float64))
    tested = []

    def run(check, basis):
        tested.clear()
        return each_changed_file(store, verified_key(check, "image_x", "000|e-mm1_1m"), rows, basis, lambda row: tested.append(row["target"]))

    assert run(FILES_MATCH_MANIFEST, match_basis()) == ([], 3) and tested == []
    # the file that did not decode at staging was not recorded for the decode check: the check reads it
    assert run(FILES_DECODE, decode_basis(0.5)) == ([], 2) and tested == ["shared/image/bad.jpg"]

    # corrupted after it was placed (same size): a new mtime, so both checks read it again
    corrupted = root / "shared/image/a.jpg"
    corrupted.write_bytes(b"\0" * len(good))
    info = corrupted.stat()
    os.utime(corrupted, ns=(info.st_atime_ns, info.st_mtime_ns - BACKDATE_NS))  # past the racy window: a trusted new version
    assert run(FILES_MATCH_MANIFEST, match_basis()) == ([], 2) and tested == ["shared/image/a.jpg"]


def test_checks_after_the_asset_skip_the_files_verified_while_fetching_and_catch_a_damaged_one(coco, root):
    key = coco.source_partitions("image_coco", "image")[0]
    checks = run_with_checks(coco, "image_coco", key)
    files = manifest_of(root, "image_coco", key)["target"].unique().to_list()
    materialization = coco.instance.get_latest_materialization_event(dg.AssetKey("image_coco"))
    assert materialization.asset_materialization.metadata["files_verified_staged"].value == len(files)
    for name in (FILES_MATCH_MANIFEST, FILES_DECODE):
        assert checks[name].passed
        assert checks[name].metadata["files_skipped"].value == len(files), f"{name} read files verified at staging"

    # damaged in place after the run (same size): the plan keeps it as present, the checks read it and fail
    damaged = root / files[0]
    damaged.write_bytes(b"\0" * damaged.stat().st_size)
    checks = run_with_checks(coco, "image_coco", key)
    for name, problem in ((FILES_MATCH_MANIFEST, "sha256"), (FILES_DECODE, "not a decodable image")):
        assert not checks[name].passed and problem in checks[name].description
