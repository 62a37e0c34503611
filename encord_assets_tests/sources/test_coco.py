"""COCO through Dagster against the mirror: placement, accounting, bytes, hostile and broken zips."""

import hashlib
import struct
import zipfile

import polars as pl
import pytest

from encord_assets.demo import normalized_rows
from encord_assets.mirror import coco as coco_mirror
from encord_assets.mirror.media import write_zip
from encord_assets.sources.coco import TAIL_BYTES, estimated_members
from encord_assets.sources.ranged_reads import RangedReads, choose, plan_parallel
from encord_assets_tests.conftest import IMAGE_HEADER, manifest_of, materialization_metadata, start_mirror, write_infos


def coco_lines(ids, save_folder="e-mm1_1m_only"):
    return [IMAGE_HEADER] + [f"{n + 1},COCO,CC-BY-4.0,{i},{i}.jpg,{save_folder}" for n, i in enumerate(ids)]


def run_all(materializer, root, asset="image_coco"):
    materializer.infos("image")
    keys = materializer.source_partitions(asset, "image")
    return {key: materializer.run(asset, key) for key in keys}


def test_auto_estimates_a_random_subset_whose_neighbours_coalesce():
    # the end record of a 2,000-member zip of ~144 KB members (the first estimate reads only this)
    entries, directory_start = 2000, 2000 * 144_000
    tail = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, entries, entries, 160_000, directory_start, 0)
    half, directory = estimated_members(tail, 1000)
    assert directory == 160_000 and len({m.header_offset for m in half}) == 1000
    # a random half: about one run of neighbours per two members, each read as one range
    assert len(plan_parallel(half, RangedReads())) < 0.7 * len(half)
    link = RangedReads(connections=8, link_bytes_per_second=25_000_000)
    assert choose(half, directory_start, 0.02, link, single_gets=True, index_bytes=directory).method == "ranges"
    few, _ = estimated_members(tail, 20)
    assert choose(few, directory_start, 0.02, link, single_gets=True, index_bytes=directory).method == "single"


def test_sample_rows_are_placed_accounted_for_and_a_rerun_fetches_nothing(sample_mirror, materializer, root, sample_rows):
    results = run_all(materializer, root)
    assert results and all(r.success for r in results.values())
    coco = sample_rows.filter(pl.col("source") == "image_coco")
    for row in coco.iter_rows(named=True):
        placed = root / row["target"]
        assert placed.read_bytes() == coco_mirror.coco_image(row["file_id"])
    manifests = pl.concat([manifest_of(root, "image_coco", key) for key in results])
    assert manifests.height == coco.height  # one manifest row per infos row
    assert set(manifests["outcome"]) <= {"placed", "already_present"}
    placed = manifests.filter(pl.col("outcome") == "placed")
    assert all(hashlib.sha256((root / t).read_bytes()).hexdigest() == s for t, s in placed.select("target", "sha256").iter_rows())

    sample_mirror.reset_stats()
    again = run_all(materializer, root)
    assert all(r.success for r in again.values())
    assert sample_mirror.stats()["by_prefix"].get("/coco", {"requests": 0})["requests"] == 0
    manifests = pl.concat([manifest_of(root, "image_coco", key) for key in again])
    assert set(manifests["outcome"]) == {"already_present"}


def central_directory_size(path) -> int:
    with zipfile.ZipFile(path) as zf:
        return path.stat().st_size - zf.start_dir


@pytest.mark.parametrize("method", ["ranges", "auto"])
def test_one_percent_subset_fetches_little_more_than_it_places(tmp_path, custom_infos, monkeypatch, materializer, root, method):
    ids = [1000 + 37 * n for n in range(20)]
    write_infos(custom_infos, "e-mm1_1m", "image", coco_lines(ids))
    rows = normalized_rows(custom_infos)
    content = tmp_path / "mirror"
    coco_mirror.build(rows, content, decoys=1980)  # 20 needed of 2000 members: a 1% subset
    mirror = start_mirror(None, content, monkeypatch)
    monkeypatch.setenv("COCO_METHOD", method)
    try:
        from encord_assets.materialize import Materializer

        materializer = Materializer(materializer.instance)
        results = run_all(materializer, root)
    finally:
        mirror.stop()
    directory = central_directory_size(content / "coco" / "zips" / "train2017.zip")
    placed_total = 0
    for key, result in results.items():
        meta = materialization_metadata(result, "image_coco")
        assert meta["rows_placed"] >= 1
        if method == "ranges":
            # the central directory (remotezip's first read of the end record overlaps it)
            allowance = directory + 256
            assert meta["read_method"] == "ranges" and "set by configuration" in meta["read_reason"]
        else:
            # a 1% subset: single GETs beat reading the 2,000-entry central directory; the end
            # record and the round-trip probes are all it costs
            allowance = TAIL_BYTES + 16
            assert meta["read_method"] == "single" and "round trip" in meta["read_reason"], meta["read_reason"]
        assert meta["bytes_fetched"] <= 1.2 * meta["bytes_placed"] + allowance, (key, meta, directory)
        placed_total += meta["bytes_placed"]
    assert placed_total == sum(len(coco_mirror.coco_image(str(i))) for i in ids)


def test_zip_members_that_escape_are_refused(tmp_path, custom_infos, monkeypatch, materializer, root):
    write_infos(custom_infos, "e-mm1_1m", "image", coco_lines([7, 8]))
    content = tmp_path / "mirror"
    write_zip(
        content / "coco" / "zips" / "train2017.zip",
        {
            "../../evil.jpg": b"evil",
            "/tmp/evil-absolute.jpg": b"evil",
            "train2017/../../../evil2.jpg": b"evil",
            "../train2017/000000000008.jpg": b"evil: the needed name behind a traversal",
            "train2017/000000000007.jpg": coco_mirror.coco_image("7"),
        },
    )
    mirror = start_mirror(None, content, monkeypatch)
    monkeypatch.setenv("COCO_METHOD", "ranges")
    try:
        from encord_assets.materialize import Materializer

        results = run_all(Materializer(materializer.instance), root)
    finally:
        mirror.stop()
    manifest = pl.concat([manifest_of(root, "image_coco", key) for key in results])
    outcomes = dict(manifest.select("target", "outcome").iter_rows())
    assert outcomes == {"e-mm1_1m_only/image/7.jpg": "placed", "e-mm1_1m_only/image/8.jpg": "unavailable"}
    refused = sum(materialization_metadata(r, "image_coco").get("note_refused_unsafe_members", 0) for r in results.values())
    assert refused >= 3 * len(results) - 0  # each partition's index refuses the escaping names
    assert not list(tmp_path.rglob("evil*"))
    assert (root / "e-mm1_1m_only/image/7.jpg").read_bytes() == coco_mirror.coco_image("7")


def test_corrupt_member_fails_the_partition_and_a_fixed_upstream_completes_it(tmp_path, custom_infos, monkeypatch, materializer, root):
    write_infos(custom_infos, "e-mm1_1m", "image", coco_lines([5]))
    rows = normalized_rows(custom_infos)
    content = tmp_path / "mirror"
    coco_mirror.build(rows, content, decoys=3)
    archive = content / "coco" / "zips" / "train2017.zip"
    good = archive.read_bytes()
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("train2017/000000000005.jpg")
    data_start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    corrupt = bytearray(good)
    corrupt[data_start + 100 : data_start + 110] = b"\x00" * 10  # same size, wrong CRC
    archive.write_bytes(bytes(corrupt))
    mirror = start_mirror(None, content, monkeypatch)
    monkeypatch.setenv("COCO_METHOD", "ranges")
    try:
        from encord_assets.materialize import Materializer

        materializer = Materializer(materializer.instance)
        (result,) = run_all(materializer, root).values()
        assert not result.success
        assert not (root / "e-mm1_1m_only/image/5.jpg").exists()
        (key,) = materializer.source_partitions("image_coco", "image")
        failed = manifest_of(root, "image_coco", key).row(0, named=True)
        assert failed["outcome"] == "failed" and failed["error_class"] == "corrupt_archive"
        assert "CRC" in failed["error_message"] or "Bad" in failed["error_message"]

        archive.write_bytes(good)
        assert materializer.run("image_coco", key).success
    finally:
        mirror.stop()
    assert (root / "e-mm1_1m_only/image/5.jpg").read_bytes() == coco_mirror.coco_image("5")


def test_a_404_is_unavailable_and_not_asked_again_and_a_503_fails_then_recovers(tmp_path, custom_infos, monkeypatch, materializer, root):
    write_infos(custom_infos, "e-mm1_1m", "image", coco_lines([11, 12, 13]))
    rows = normalized_rows(custom_infos)
    mirror = start_mirror(rows, tmp_path / "mirror", monkeypatch)
    monkeypatch.setenv("COCO_METHOD", "images")
    try:
        from encord_assets.materialize import Materializer

        materializer = Materializer(materializer.instance)
        mirror.answer({"/coco/train2017/000000000011.jpg": 404, "/coco/train2017/000000000012.jpg": 503})
        first = run_all(materializer, root)
        outcomes = {}
        for key in first:
            outcomes |= dict(manifest_of(root, "image_coco", key).select("target", "outcome").iter_rows())
        assert outcomes == {
            "e-mm1_1m_only/image/11.jpg": "unavailable",
            "e-mm1_1m_only/image/12.jpg": "failed",
            "e-mm1_1m_only/image/13.jpg": "placed",
        }
        failed_keys = [k for k, r in first.items() if not r.success]
        assert len(failed_keys) == 1

        mirror.answer({})
        mirror.reset_stats()
        for key in first:
            assert materializer.run("image_coco", key).success
        # only the failed image was fetched again: no request for the unavailable or placed ones
        assert mirror.stats()["by_prefix"]["/coco"]["requests"] == 1
    finally:
        mirror.stop()
    assert (root / "e-mm1_1m_only/image/12.jpg").read_bytes() == coco_mirror.coco_image("12")
