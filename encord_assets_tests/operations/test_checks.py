import io
import os
import random
import subprocess
from pathlib import Path

import dagster as dg
import imageio_ffmpeg
import numpy as np
import polars as pl
import pytest
from PIL import Image

from encord_assets.materialize import Materializer
from encord_assets.mirror.media import jpeg_bytes
from encord_assets.operations.checks import decode_problem, each_changed_file, match_manifest
from encord_assets.operations.decode import Undecodable, decode_clip, decode_image, decode_npy, decoder_for
from encord_assets.store import DatasetStore
from encord_assets_tests.conftest import IMAGE_HEADER, manifest_of, write_infos


def run_with_checks(materializer: Materializer, asset_name: str, partition_key: str) -> dict[str, dg.AssetCheckEvaluation]:
    """Materialize one asset partition with its checks, as the code location's fill job does."""
    result = materializer.run(asset_name, partition_key)
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def test_source_checks_pass_on_a_fetched_partition_and_catch_a_damaged_or_missing_file(coco, root):
    key = coco.source_partitions("image_coco", "image")[0]
    checks = run_with_checks(coco, "image_coco", key)
    assert checks["files_match_manifest"].passed and checks["files_decode"].passed

    manifest = manifest_of(root, "image_coco", key)
    damaged = root / manifest["target"][0]
    # Same size: the next run keeps the file as already present; only the hash and the decoder notice.
    damaged.write_bytes(b"\0" * damaged.stat().st_size)
    checks = run_with_checks(coco, "image_coco", key)
    assert not checks["files_match_manifest"].passed and "sha256" in checks["files_match_manifest"].description
    assert not checks["files_decode"].passed and "not a decodable image" in checks["files_decode"].description

    damaged.unlink()
    store = DatasetStore(root=str(root))
    assert match_manifest(store, store.present(manifest["target"].to_list()), manifest.row(0, named=True)) == "missing from the layout"


def age(path, seconds: float = 60) -> None:
    """Move a file's mtime into the past, as if it had been placed a while ago."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - int(seconds * 1e9)))


def test_checks_skip_files_that_passed_and_did_not_change_and_catch_one_damaged_since(coco, root):
    key = coco.source_partitions("image_coco", "image")[0]
    run_with_checks(coco, "image_coco", key)
    manifest = manifest_of(root, "image_coco", key)
    files = [root / target for target in manifest["target"].unique()]
    for path in files:
        age(path)
    checks = run_with_checks(coco, "image_coco", key)
    assert checks["files_match_manifest"].passed and checks["files_decode"].passed

    # damaged in place a moment after a passing check: same size, same inode
    damaged = files[0]
    damaged.write_bytes(b"\0" * damaged.stat().st_size)
    checks = run_with_checks(coco, "image_coco", key)
    for name, problem in (("files_match_manifest", "sha256"), ("files_decode", "not a decodable image")):
        assert not checks[name].passed and problem in checks[name].description
        assert checks[name].metadata["files_skipped"].value == len(files) - 1


def test_a_file_is_tested_again_when_replaced_or_when_its_basis_changes(any_root):
    store = DatasetStore(root=str(any_root))
    targets = ["shared/image/a.jpg", "shared/image/b.jpg"]
    for target in targets:
        store.write(target, lambda path: path.write_bytes(b"good"))
    local = isinstance(any_root, Path)
    if local:
        for target in targets:
            age(any_root / target)
    rows = pl.DataFrame({"target": targets, "sha256": ["s1", "s2"]})
    tested = []

    def test(row):
        tested.append(row["target"])
        with store.local_file(row["target"]) as path:
            return None if path.read_bytes() == b"good" else "damaged"

    def run(rows=rows):
        tested.clear()
        return each_changed_file(store, "_encord_assets/verified/t.parquet", rows, pl.col("sha256"), test)

    assert run() == ([], 0) and tested == targets
    assert run() == ([], 2) and tested == []

    # replaced by other bytes of the same size; locally even with the old mtime (a new inode)
    mtime = (any_root / targets[0]).stat().st_mtime_ns if local else None
    store.write(targets[0], lambda path: path.write_bytes(b"evil"))
    if local:
        os.utime(any_root / targets[0], ns=(mtime, mtime))
    problem = [{"target": targets[0], "problem": "damaged"}]
    assert run() == (problem, 1) and tested == [targets[0]]
    assert run() == (problem, 1), "a file that failed is not remembered as verified"

    store.write(targets[0], lambda path: path.write_bytes(b"good"))
    if local:
        age(any_root / targets[0])
    assert run() == ([], 1)
    assert run(rows.with_columns(sha256=pl.lit("new"))) == ([], 0) and sorted(tested) == targets


def test_the_infos_check_passes_on_clean_infos_and_fails_when_rows_are_rejected(instance, custom_infos):
    write_infos(custom_infos, "e-mm1_1m", "image", [IMAGE_HEADER, "1,COCO,x,5,5.jpg,shared"])
    write_infos(custom_infos, "e-mm1_100m", "image", [IMAGE_HEADER, "1,COCO,x,5,5.jpg,shared", "2,COCO,x,6,../6.jpg,shared"])
    clean = run_with_checks(Materializer(instance), "infos_image", "e-mm1_1m")["rows_accepted_and_routed"]
    assert clean.passed
    routed = run_with_checks(Materializer(instance), "infos_image", "e-mm1_100m")["rows_accepted_and_routed"]
    assert not routed.passed and routed.metadata["rejected"].value == 1
    assert routed.severity == dg.AssetCheckSeverity.ERROR


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=64x48:rate=10",
         "-f", "lavfi", "-i", "sine=duration=2", "-shortest", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return path


def test_decoders_by_extension_and_modality(tmp_path, clip):
    image = tmp_path / "a.jpg"
    image.write_bytes(jpeg_bytes("x"))
    points = tmp_path / "p.npy"
    np.save(points, np.zeros((5, 6), dtype=np.float32))
    assert decoder_for(image, "image") is decode_image and decode_image(image) == {"width": 96, "height": 64}
    assert decoder_for(points, "points") is decode_npy and decode_npy(points) == {"shape": [5, 6]}
    assert decoder_for(clip, "audio") is decode_clip and abs(decode_clip(clip)["duration"] - 2.0) < 0.1
    assert decoder_for(tmp_path / "no_extension", "points") is decode_npy

    for path, decode in ((image, decode_image), (points, decode_npy), (clip, decode_clip)):
        broken = path.with_name("broken" + path.suffix)
        broken.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
        with pytest.raises(Undecodable):
            decode(broken)


def full_decode_fails(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
    except OSError:
        return True
    return False


def test_an_image_decodes_at_a_smaller_scale_yet_fails_where_a_full_decode_fails(tmp_path):
    """decode_image decodes JPEGs in draft mode (1/8 scale): damaged files (cut anywhere, or with
    random bytes or end markers written into the scan data) get the same verdict as a full decode."""
    rng = random.Random(7)
    verdicts = []
    for n in range(60):
        data = io.BytesIO()
        Image.frombytes("RGB", (160, 120), rng.randbytes(160 * 120 * 3)).save(data, "JPEG", quality=85)
        damaged = bytearray(data.getvalue())
        at = rng.randrange(700, len(damaged) - 400)
        if n % 3 == 0:
            damaged = damaged[:at]
        elif n % 3 == 1:
            damaged[at : at + 300] = rng.randbytes(300)
        else:
            damaged[at : at + 20] = b"\xff\xd9" * 10
        path = tmp_path / f"{n}.jpg"
        path.write_bytes(bytes(damaged))
        try:
            decode_image(path)
            caught = False
        except Undecodable:
            caught = True
        verdicts.append((n % 3, caught, full_decode_fails(path)))
    assert all(caught == full for _, caught, full in verdicts)
    # every cut file is caught, and random bytes in the scan mostly; the rest decodes (to wrong pixels) either way
    assert all(caught for kind, caught, _ in verdicts if kind == 0)
    assert sum(caught for kind, caught, _ in verdicts if kind == 1) >= 5


def test_a_clip_must_last_what_the_infos_say(tmp_path, clip):
    row = {"target": clip.name, "modality": "video"}
    assert decode_problem(DatasetStore(root=str(tmp_path)), {**row, "expected_duration": 2.0}, tolerance=0.5) is None
    assert "infos say 5.00 s" in decode_problem(DatasetStore(root=str(tmp_path)), {**row, "expected_duration": 5.0}, tolerance=0.5)
