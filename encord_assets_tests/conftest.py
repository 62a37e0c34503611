"""Shared fixtures: a temporary ROOT and DAGSTER_HOME, and the upstream mirror on 127.0.0.1."""

import logging
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from encord_assets.demo import normalized_rows
from encord_assets.infos.files import SAMPLE_INFOS_DIR
from encord_assets.materialize import Materializer
from encord_assets.mirror.build import attach, build_content
from encord_assets.mirror.server import Mirror
from encord_assets.settings import BY_NAME
from encord_assets.operations.instance import install_instance_yaml
from encord_assets.store.objectstore import ObjectStore


def pytest_collection_modifyitems(items):
    """Files marked `long_running` first: the test workers take whole files, and a long file
    started last would leave one worker busy alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("long_running") is None)


@contextmanager
def fresh_dagster_home(fallback: Path):
    """A new DAGSTER_HOME with the project's dagster.yaml; on tmpfs when there is one (else under
    `fallback`), because the instance's sqlite fsyncs dominate small runs."""
    shm = Path("/dev/shm")
    home = Path(tempfile.mkdtemp(prefix="encord_dagster_home_", dir=shm if shm.is_dir() else fallback))
    install_instance_yaml(home)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def dagster_home(tmp_path):
    with fresh_dagster_home(tmp_path) as home:
        yield home


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path, dagster_home, monkeypatch):
    """Each test gets its own ROOT, DAGSTER_HOME and HF cache; nothing leaks between tests."""
    # The dagster CLI loads ./.env, which `encord-assets demo` writes: run every test (and the
    # processes it starts) from its own folder so a demo run in the checkout cannot steer them.
    monkeypatch.chdir(tmp_path)
    for name in (*BY_NAME, "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("ROOT_DATA_PATH", str(tmp_path / "root"))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))


@pytest.fixture(autouse=True)
def _no_stale_definitions_state():
    """Dagster keeps the definitions-state storage of the last instance entered in a context
    variable; an earlier test's instance, closed since, would be found there when definitions are
    resolved outside any instance (module-level `defs`, `dg.materialize` on an ephemeral instance)."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "root"


@pytest.fixture(scope="session")
def objectstore(tmp_path_factory):
    """One local S3-compatible server for the session (each test gets its own bucket); parts of any
    size are accepted so that small test files go through multipart uploads too."""
    with ObjectStore(tmp_path_factory.mktemp("objectstore"), min_part_bytes=1) as server:
        yield server


@pytest.fixture
def s3_root(objectstore, tmp_path, monkeypatch) -> str:
    """ROOT as `s3://<fresh bucket>/root` on the local server, with the standard AWS variables set."""
    objectstore.set_faults(0.0)
    bucket = objectstore.create_bucket(f"test-{uuid.uuid4().hex[:12]}")
    for name, value in objectstore.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ENCORD_SCRATCH_DIR", str(tmp_path / "scratch"))
    # multipart from 16 KiB: the sample's clips and archives' members take that path as well
    monkeypatch.setenv("ENCORD_UPLOAD_PART_BYTES", str(8 << 10))
    root = f"s3://{bucket}/root"
    monkeypatch.setenv("ROOT_DATA_PATH", root)
    return root


@pytest.fixture(params=["local", "s3"])
def any_root(request) -> Path | str:
    """ROOT as a local folder, then as an s3:// prefix (tests taking it run on both)."""
    return request.getfixturevalue("root" if request.param == "local" else "s3_root")


@pytest.fixture
def instance(tmp_path):
    with dg.DagsterInstance.get() as instance:
        yield instance


def start_mirror(rows: pl.DataFrame | None, content_dir: Path, monkeypatch) -> Mirror:
    """Serve `content_dir` (first built for `rows`, unless None) and point every setting at it."""
    if rows is not None:
        build_content(rows, content_dir)
    mirror = Mirror(content_dir).start()
    for name, value in attach(mirror).items():
        monkeypatch.setenv(name, value)
    return mirror


@pytest.fixture(scope="session")
def sample_rows() -> pl.DataFrame:
    return normalized_rows(SAMPLE_INFOS_DIR)


@pytest.fixture(scope="session")
def sample_mirror_content(sample_rows, tmp_path_factory) -> Path:
    content = tmp_path_factory.mktemp("sample_mirror")
    build_content(sample_rows, content)
    return content


@pytest.fixture
def sample_mirror(sample_mirror_content, monkeypatch):
    """The mirror serving every upstream of the bundled sample, with settings pointed at it."""
    mirror = start_mirror(None, sample_mirror_content, monkeypatch)
    yield mirror
    mirror.stop()


@pytest.fixture
def materializer(instance) -> Materializer:
    """Build it after the fixtures that set the environment (mirror settings) have run."""
    return Materializer(instance)


IMAGE_HEADER = "encord_image_id,source_dataset,dataset_license,file_id,file_name,save_folder"


def write_infos(infos_dir: Path, split: str, modality: str, lines: list[str]) -> Path:
    """Write `<split>/infos/<modality>.csv` (header first) under an E-MM1-shaped folder."""
    path = infos_dir / split / "infos" / f"{modality}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def custom_infos(tmp_path, monkeypatch):
    """An empty E-MM1-shaped infos folder that the assets read (ENCORD_INFOS_DIR)."""
    infos_dir = tmp_path / "infos"
    infos_dir.mkdir()
    monkeypatch.setenv("ENCORD_INFOS_DIR", str(infos_dir))
    return infos_dir


def manifest_of(root: Path | str, asset_name: str, partition_key: str) -> pl.DataFrame | None:
    """The partition's manifest under a local or s3:// ROOT (None when there is none)."""
    from encord_assets.store import DatasetStore

    return DatasetStore(root=str(root)).read_manifest(asset_name, partition_key)


def partition_work(source_name: str, rows: pl.DataFrame, ledger, root: Path | str):
    """What the source asset hands its fetcher, for running a fetcher on its own."""
    from encord_assets.sources.registry import source_by_name
    from encord_assets.sources.work import PartitionWork
    from encord_assets.store import DatasetStore

    return PartitionWork(source_by_name(source_name), "test", rows, ledger, DatasetStore(root=str(root)), logging.getLogger("tests"))


def materialization_metadata(result, asset_name: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset_name]
    return {k: v.value for k, v in event.materialization.metadata.items()}
