"""The dataset store on a local ROOT and on an s3:// ROOT (the local S3-compatible server)."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import polars as pl

from encord_assets.materialize import Materializer
from encord_assets.store import DatasetStore
from encord_assets_tests.conftest import manifest_of
from encord_assets_tests.reliability.support import start_materialize


def staged_file(folder, name: str, data: bytes, target: str) -> dict:
    path = folder / name
    path.write_bytes(data)
    return {"staged_path": str(path), "target": target, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def store_for(root) -> DatasetStore:
    return DatasetStore(root=str(root), scratch_dir=os.environ.get("ENCORD_SCRATCH_DIR", ""), upload_part_bytes=8 << 10)


def test_place_present_and_bookkeeping(any_root, tmp_path):
    store = store_for(any_root)
    contents = {f"shared/image/{n}.jpg": os.urandom(size) for n, size in enumerate((10, 5000, 70_000))}  # the last in parts
    staged = [staged_file(tmp_path, f"{n}.part", data, target) for n, (target, data) in enumerate(contents.items())]
    assert store.place_all(staged) == [("placed", len(data)) for data in contents.values()]
    assert store.present([*contents, "shared/image/missing.jpg", "shared/video/none.mp4"]) == {t: len(d) for t, d in contents.items()}
    assert all(store.sha256(target) == hashlib.sha256(data).hexdigest() for target, data in contents.items())

    (again,) = store.place_all([staged_file(tmp_path, "again.part", b"other bytes", "shared/image/0.jpg")])
    if store.is_local:  # a rename replaces the file whole (the plan never stages a present target)
        assert again == ("placed", 11)
    else:  # a conditional create: a second writer never replaces the first one's object
        assert again == ("already_present", 10)
        assert store.sha256("shared/image/0.jpg") == hashlib.sha256(contents["shared/image/0.jpg"]).hexdigest()

    key = store.state_key("youtube", "pause_until")
    assert store.read_bytes(key) is None
    store.write_bytes(key, b"123.0")
    assert store.read_bytes(key) == b"123.0" and store.find(store.state_key("youtube")) == {key: 5}
    store.delete(key)
    assert store.find(store.state_key("youtube")) == {}
    store.write_manifest("image_coco", "000|e-mm1_1m", pl.DataFrame({"target": ["shared/image/0.jpg"]}))
    assert store.read_manifest("image_coco", "000|e-mm1_1m")["target"].to_list() == ["shared/image/0.jpg"]
    assert [uri for uri, _ in store.manifests()] == [store.uri("_encord_assets/manifests/image_coco/000__e-mm1_1m.parquet")]


def test_uploads_survive_slow_downs_resets_and_truncated_responses(s3_root, objectstore, tmp_path):
    store = store_for(s3_root)
    contents = {f"shared/video/{n}.mp4": os.urandom(1000 + n * 3000) for n in range(24)}
    staged = [staged_file(tmp_path, f"{n}.part", data, target) for n, (target, data) in enumerate(contents.items())]
    objectstore.set_faults(0.3, kinds=("503", "reset", "truncate"), seed=5)
    results = store.place_all(staged)
    stats = objectstore.stats()
    objectstore.set_faults(0.0)
    assert stats["faults_injected"] >= 10
    assert results == [("placed", len(data)) for data in contents.values()]
    assert {t: store.sha256(t) for t in contents} == {t: hashlib.sha256(d).hexdigest() for t, d in contents.items()}
    assert objectstore.client().list_multipart_uploads(Bucket=s3_root.split("/")[2]).get("Uploads", []) == []


PLACE_ONE = """
import hashlib, sys
from pathlib import Path
from encord_assets.store import DatasetStore
path = Path(sys.argv[2])
store = DatasetStore(root=sys.argv[1], upload_part_bytes=8 << 10)
print(store.place_all([{"staged_path": str(path), "target": "shared/video/big.mp4", "bytes": path.stat().st_size,
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}]))
"""


def test_sigkill_mid_upload_leaves_no_object_and_the_next_run_aborts_the_upload(s3_root, objectstore, tmp_path):
    bucket, client = s3_root.split("/")[2], objectstore.client()
    big = tmp_path / "big.part"
    big.write_bytes(os.urandom(400_000))  # 49 parts of 8 KiB
    objectstore.set_faults(0.0, delay=0.1)
    before = objectstore.stats()["requests"].get("PUT", 0)
    process = subprocess.Popen([sys.executable, "-c", PLACE_ONE, s3_root, str(big)], start_new_session=True)
    deadline = time.monotonic() + 60
    while objectstore.stats()["requests"].get("PUT", 0) < before + 3:  # a few parts are in
        assert process.poll() is None and time.monotonic() < deadline, "the upload ended before it could be killed"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    objectstore.set_faults(0.0)

    store = store_for(s3_root)
    assert store.present(["shared/video/big.mp4"]) == {}  # nothing at the final key
    (upload,) = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert upload["Key"] == "root/shared/video/big.mp4"
    assert store.abort_abandoned_uploads(["shared/video/other.mp4"]) == 0
    assert store.abort_abandoned_uploads(["shared/video/big.mp4"]) == 1
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_killed_run_on_object_storage_is_cleaned_up_by_the_next_run(s3_root, objectstore, sample_mirror, instance, tmp_path):
    """Through Dagster: a YouTube partition killed while its clips upload in parts; the next run of
    the partition aborts the abandoned uploads and places every clip."""
    materializer = Materializer(instance)
    materializer.run("infos_video", "e-mm1_1m", raise_on_error=True)
    key = max(materializer.source_partitions("video_valor", "video"), key=lambda k: k)
    objectstore.set_faults(0.0, delay=0.3)
    log = objectstore.directory / "requests.log"
    seen = len(log.read_text().splitlines())
    process = start_materialize("video_valor", key, tmp_path / "killed.log")
    deadline = time.monotonic() + 180
    bucket = s3_root.split("/")[2]
    # until a part of a clip arrives: its multipart upload exists
    while not any(f"/{bucket}/" in line and "partNumber=" in line for line in log.read_text().splitlines()[seen:]):
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()[-3000:]
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    objectstore.set_faults(0.0)
    client = objectstore.client()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert manifest_of(s3_root, "video_valor", key) is None

    assert materializer.run("video_valor", key).success
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    manifest = manifest_of(s3_root, "video_valor", key)
    assert set(manifest["outcome"]) <= {"placed", "already_present"}
    store = store_for(s3_root)
    assert all(store.sha256(t) == sha for t, sha in manifest.select("target", "sha256").iter_rows())


def test_copy_to_links_on_a_local_root_and_downloads_from_a_bucket(any_root, tmp_path):
    store = store_for(any_root)
    data = os.urandom(20_000)
    store.place_all([staged_file(tmp_path, "a.part", data, "shared/image/a.jpg")])
    dest = tmp_path / "out" / "a.jpg"
    dest.parent.mkdir()
    how = store.copy_to("shared/image/a.jpg", dest)
    assert dest.read_bytes() == data
    if store.is_local:
        assert how == "linked" and os.stat(dest).st_ino == os.stat(any_root / "shared/image/a.jpg").st_ino
    else:
        assert how == "downloaded"
    missing = tmp_path / "out" / "missing.jpg"
    try:
        store.copy_to("shared/image/missing.jpg", missing)
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("a missing target must raise FileNotFoundError")
    assert not missing.exists()
