import subprocess

import dagster as dg
import imageio_ffmpeg
import numpy as np
import pytest

from encord_assets.materialize import Materializer
from encord_assets.mirror.media import jpeg_bytes
from encord_assets.operations.checks import decode_problem, match_manifest
from encord_assets.operations.decode import Undecodable, decode_clip, decode_image, decode_npy, decoder_for
from encord_assets.store import DatasetStore
from encord_assets_tests.conftest import IMAGE_HEADER, manifest_of, write_infos


def run_with_checks(materializer: Materializer, asset_name: str, partition_key: str) -> dict[str, dg.AssetCheckEvaluation]:
    """Materialize one asset partition with its checks, as a job of the code location does."""
    job = dg.define_asset_job("with_checks", selection=dg.AssetSelection.assets(asset_name))
    defs = dg.Definitions.merge(materializer.defs, dg.Definitions(jobs=[job]))
    result = defs.resolve_job_def("with_checks").execute_in_process(
        partition_key=partition_key, instance=materializer.instance, raise_on_error=False
    )
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


def test_a_clip_must_last_what_the_infos_say(tmp_path, clip):
    row = {"target": clip.name, "modality": "video"}
    assert decode_problem(DatasetStore(root=str(tmp_path)), {**row, "expected_duration": 2.0}, tolerance=0.5) is None
    assert "infos say 5.00 s" in decode_problem(DatasetStore(root=str(tmp_path)), {**row, "expected_duration": 5.0}, tolerance=0.5)
