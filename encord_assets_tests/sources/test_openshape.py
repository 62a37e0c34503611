import io
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from encord_assets.layout.paths import manifest_key
from encord_assets.ledger import FetchLedger
from encord_assets.materialize import Materializer
from encord_assets.mirror import hf_hub
from encord_assets.mirror.openshape import archive_members, point_cloud, write_tar_gz
from encord_assets.mirror.server import Mirror
from encord_assets.sources.archive_index import ArchiveIndex
from encord_assets.settings import OPENSHAPE_REPO_ID as REPO_ID
from encord_assets.sources.openshape import OpenShapePoints
from encord_assets.sources.registry import source_by_name
from encord_assets.store import DatasetStore
from encord_assets_tests.conftest import start_mirror

POINT_SOURCES = ("points_3dfuture", "points_abo", "points_shapenet", "points_objaverse")
FUTURE = "points_3dfuture"


def points_infos(materializer, splits=("e-mm1_100m", "e-mm1_1m", "eshot")) -> None:
    for split in splits:
        materializer.run("infos_points", split, raise_on_error=True)


def run_points(materializer, root) -> None:
    for name in POINT_SOURCES:
        spec = source_by_name(name)
        if spec.locates_rows:
            materializer.located_partitions(spec)
        else:
            for key in materializer.source_partitions(name, "points"):
                materializer.run(name, key)


def manifests(root: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(root / "_encord_assets/manifests" / name / "*.parquet")


def future_ids(sample_rows: pl.DataFrame) -> list[str]:
    return sorted(set(sample_rows.filter(pl.col("source") == FUTURE)["file_id"]))


def test_sample_point_clouds_are_placed_and_load_with_numpy(sample_mirror, materializer, root, sample_rows):
    points_infos(materializer)
    run_points(materializer, root)
    assert not materializer.failures
    rows = sample_rows.filter(pl.col("modality") == "points")
    placed = pl.concat([manifests(root, name) for name in POINT_SOURCES])
    assert placed.height == rows.height
    assert set(placed["outcome"]) == {"placed"}
    for file_id, target in rows.select("file_id", "target").iter_rows():
        assert (root / target).read_bytes() == point_cloud(file_id)
        assert np.load(root / target).shape == (2048, 6)
    # only the archives holding the sample's Objaverse ids were read; the rest have nothing missing
    ran = sorted(p.stem for p in (root / "_encord_assets/manifests/points_objaverse").glob("*.parquet"))
    assert ran == ["000-000", "000-001", "000-002", "000-003"][: len(ran)] and len(ran) <= 4

    sample_mirror.reset_stats()
    run_points(materializer, root)
    assert sample_mirror.stats()["bytes_sent"] == 0
    again = pl.concat([manifests(root, name) for name in POINT_SOURCES])
    assert set(again["outcome"]) == {"already_present"} and again.height == rows.height


def write_hostile_archive(content_dir: Path, wanted: list[str]) -> None:
    """3D-FUTURE.tar.gz whose first id exists only as members that must be refused."""
    bad = wanted[0]
    path = hf_hub.repo_dir(content_dir, REPO_ID) / "3D-FUTURE.tar.gz"
    data = point_cloud(bad)
    with tarfile.open(path, "w:gz") as tar:
        for name in (f"../../escaped/{bad}.npy", f"/tmp/absolute/{bad}.npy", f"3D-FUTURE/a/..\\{bad}.npy"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(f"3D-FUTURE/{bad}.npy")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        hard = tarfile.TarInfo(f"3D-FUTURE/x/{bad}.npy")
        hard.type, hard.linkname = tarfile.LNKTYPE, "../../etc/passwd"
        tar.addfile(hard)
        device = tarfile.TarInfo(f"3D-FUTURE/dev/{bad}.npy")
        device.type = tarfile.CHRTYPE
        tar.addfile(device)
        for name, body in archive_members("3D-FUTURE", wanted[1:], 2).items():
            info = tarfile.TarInfo(name)
            if body is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))


def test_links_devices_and_escaping_members_are_refused(sample_mirror, materializer, root, sample_rows, tmp_path):
    wanted = future_ids(sample_rows)
    write_hostile_archive(Path(sample_mirror.state.content_dir), wanted)
    points_infos(materializer, ("e-mm1_100m", "e-mm1_1m"))
    result = materializer.run(FUTURE, "3D-FUTURE")
    assert result.success
    manifest = manifests(root, FUTURE)
    outcomes = dict(manifest.select(pl.col("target").str.split("/").list.last().str.strip_suffix(".npy"), "outcome").iter_rows())
    assert outcomes[wanted[0]] == "unavailable" and {outcomes[i] for i in wanted[1:]} == {"placed"}
    metadata = result.asset_materializations_for_node(FUTURE)[0].metadata
    assert metadata["note_refused_unsafe_members"].value == 3
    assert metadata["note_refused_link_or_device_members"].value == 3
    outside = [p for p in tmp_path.rglob(f"{wanted[0]}*") if not p.is_relative_to(root) and "mirror" not in p.parts]
    assert outside == [] and not Path("/tmp/absolute").exists()
    assert not list(root.rglob(f"{wanted[0]}.npy"))


def wchar() -> int:
    return int(next(line for line in Path("/proc/self/io").read_text().splitlines() if line.startswith("wchar")).split()[1])


def test_disk_written_for_an_archive_is_the_members_placed(tmp_path, monkeypatch):
    """A 40 MB archive holding 3 needed members: only their bytes are written (no copy of the
    archive, nothing in the HF cache); the pass stops at the last needed member."""
    needed = ["aaaa", "bbbb", "cccc"]
    content = tmp_path / "mirror"
    rng = np.random.default_rng(0)
    members = {f"3D-FUTURE/{i}/{file_id}.npy": point_cloud(file_id, 20_000) for i, file_id in enumerate(needed)}
    members |= {f"3D-FUTURE/decoys/{n}.npy": rng.bytes(2_000_000) for n in range(20)}
    write_tar_gz(hf_hub.repo_dir(content, REPO_ID) / "3D-FUTURE.tar.gz", members)
    with Mirror(content) as mirror:
        hf_hub.routes(mirror)
        source = OpenShapePoints(endpoint=mirror.url)
        log = FetchLedger(tmp_path / "staging")
        wanted = {file_id: [f"shared/points/{file_id}.npy"] for file_id in needed}
        before = wchar()
        result = source.read_archive(source.index_revision(), "3D-FUTURE.tar.gz", wanted, log)
        written = wchar() - before
    placed = sum(len(point_cloud(i, 20_000)) for i in needed)
    assert not wanted and not result.complete
    assert written <= 1.05 * placed, (written, placed)
    assert not any(Path(os.environ["HF_HOME"]).rglob("*.tar.gz"))
    assert log.bytes_fetched < 0.5 * (hf_hub.repo_dir(content, REPO_ID) / "3D-FUTURE.tar.gz").stat().st_size


def test_a_killed_archive_pass_leaves_no_partial_files_and_the_rerun_completes(
    sample_mirror, materializer, root, sample_rows
):
    wanted = future_ids(sample_rows)
    rng = np.random.default_rng(1)
    members = {f"3D-FUTURE/first/{wanted[0]}.npy": point_cloud(wanted[0])}
    members |= {f"3D-FUTURE/decoys/{n}.npy": rng.bytes(1_000_000) for n in range(16)}
    members |= {f"3D-FUTURE/later/{file_id}.npy": point_cloud(file_id) for file_id in wanted[1:]}
    write_tar_gz(hf_hub.repo_dir(Path(sample_mirror.state.content_dir), REPO_ID) / "3D-FUTURE.tar.gz", members)
    points_infos(materializer, ("e-mm1_100m", "e-mm1_1m"))
    # every pass is cut at half the archive: the first member is staged, then the client backs off
    sample_mirror.set_faults(1.0, kinds=("truncate",), path_prefix=f"/hf/datasets/{REPO_ID}/3D-FUTURE.tar.gz")
    staging = root / "_encord_assets/staging" / FUTURE
    process = subprocess.Popen(
        ["dagster", "asset", "materialize", "-m", "encord_assets.definitions", "--select", FUTURE, "--partition", "3D-FUTURE"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(staging.rglob("*.part")):
            assert process.poll() is None and time.monotonic() < deadline, "the run ended before staging anything"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    targets = sample_rows.filter(pl.col("source") == FUTURE)["target"].to_list()
    assert not any((root / target).exists() for target in targets)
    assert not (root / manifest_key(FUTURE, "3D-FUTURE")).exists()

    sample_mirror.set_faults(0.0)
    result = materializer.run(FUTURE, "3D-FUTURE")
    assert result.success
    for file_id, target in sample_rows.filter(pl.col("source") == FUTURE).select("file_id", "target").iter_rows():
        assert (root / target).read_bytes() == point_cloud(file_id)
    assert not list(staging.rglob("*.part"))


def test_objaverse_ids_in_no_archive_end_unavailable_once_every_archive_is_read(tmp_path, sample_rows, instance, root, monkeypatch):
    lost = sample_rows.filter(pl.col("source") == "points_objaverse")["file_id"][0]
    mirror = start_mirror(sample_rows.filter(pl.col("file_id") != lost), tmp_path / "mirror", monkeypatch)
    try:
        materializer = Materializer(instance)
        spec = source_by_name("points_objaverse")
        index = ArchiveIndex(DatasetStore(root=str(root)), spec.name, spec.partitions.keys)
        # the archives after the fourth hold no sample id on the mirror: record them as read
        for key in spec.partitions.keys[4:]:
            index.record(key, [], complete=True)
        points_infos(materializer, ("e-mm1_100m", "e-mm1_1m", "eshot"))
        materializer.located_partitions(spec)
        manifest = manifests(root, spec.name)
        lost_rows = manifest.filter(pl.col("target").str.contains(lost))
        assert lost_rows.height >= 1 and set(lost_rows["outcome"]) == {"unavailable"}
        assert set(lost_rows["error_class"]) == {"not_in_any_archive"}
        assert set(manifest.filter(~pl.col("target").str.contains(lost))["outcome"]) == {"placed"}
        assert manifest.height == sample_rows.filter(pl.col("source") == spec.name).height
        index.refresh()
        assert index.all_complete()
    finally:
        mirror.stop()
