"""A run killed mid-partition leaves no partial file at any final path, and the re-run completes."""

import os
import signal
import subprocess
import time

import polars as pl

from encord_assets.demo import normalized_rows
from encord_assets.layout.paths import BOOKKEEPING_DIR, manifest_key, staging_key
from encord_assets.mirror import coco as coco_mirror
from encord_assets_tests.conftest import IMAGE_HEADER, start_mirror, write_infos


def materialize_command(asset: str, partition: str) -> list[str]:
    return ["dagster", "asset", "materialize", "-m", "encord_assets.definitions", "--select", asset, "--partition", partition]


def final_files(root):
    return [p for p in root.rglob("*") if p.is_file() and (root / BOOKKEEPING_DIR) not in p.parents]


def test_sigkill_mid_partition_then_rerun(tmp_path, custom_infos, monkeypatch, materializer, root):
    ids = list(range(1, 41))
    write_infos(custom_infos, "e-mm1_1m", "image", [IMAGE_HEADER] + [f"{i},COCO,x,{i},{i}.jpg,e-mm1_1m_only" for i in ids])
    rows = normalized_rows(custom_infos)
    key = rows["partition_key"].value_counts().sort("count", descending=True)["partition_key"][0]
    wanted = rows.filter(pl.col("partition_key") == key)
    assert wanted.height >= 3
    mirror = start_mirror(rows, tmp_path / "mirror", monkeypatch)
    monkeypatch.setenv("COCO_METHOD", "images")
    monkeypatch.setenv("COCO_THREADS", "1")
    try:
        materializer.infos("image")
        mirror.set_faults(0.0, latency_seconds=0.5, path_prefix="/coco/")
        staging = root / staging_key("image_coco", key)
        log_file = open(tmp_path / "killed_run.log", "w")
        process = subprocess.Popen(materialize_command("image_coco", key), start_new_session=True, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not list(staging.rglob("*.part")) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert list(staging.rglob("*.part")), (tmp_path / "killed_run.log").read_text()[-3000:]
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

        assert final_files(root) == []  # nothing is placed before the whole partition is fetched
        assert not (root / manifest_key("image_coco", key)).exists()
        leftovers = list(staging.iterdir())
        assert leftovers  # the killed run's staging is still there ...

        mirror.set_faults(0.0)
        result = subprocess.run(materialize_command("image_coco", key), capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    finally:
        mirror.stop()
    assert not any(p.exists() for p in leftovers)  # ... and the next run removed it
    for row in wanted.iter_rows(named=True):
        assert (root / row["target"]).read_bytes() == coco_mirror.coco_image(row["file_id"])
    assert len(final_files(root)) == wanted.height
    manifest = pl.read_parquet(root / manifest_key("image_coco", key))
    assert manifest.height == wanted.height and set(manifest["outcome"]) == {"placed"}
