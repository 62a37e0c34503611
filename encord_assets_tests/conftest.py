"""Shared fixtures: a temporary ROOT and DAGSTER_HOME, and the upstream mirror on 127.0.0.1."""

import os
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from encord_assets.demo import normalized_rows
from encord_assets.infos.files import SAMPLE_INFOS_DIR
from encord_assets.materialize import Materializer
from encord_assets.mirror.build import attach, build_content
from encord_assets.mirror.server import Mirror


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path, monkeypatch):
    """Each test gets its own ROOT, DAGSTER_HOME and HF cache; nothing leaks between tests."""
    for name in list(os.environ):
        if name.startswith(("ENCORD_", "COCO_", "HF_", "YOUTUBE_", "GCC_", "OPENSHAPE_", "URL_IMAGES_")) or name in ("ROOT_DATA_PATH", "DAGSTER_HOME"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("ROOT_DATA_PATH", str(tmp_path / "root"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def instance(tmp_path):
    with dg.DagsterInstance.get() as instance:
        yield instance


def start_mirror(rows: pl.DataFrame, content_dir: Path, monkeypatch) -> Mirror:
    build_content(rows, content_dir)
    mirror = Mirror(content_dir).start()
    for name, value in attach(mirror).items():
        monkeypatch.setenv(name, value)
    return mirror


@pytest.fixture(scope="session")
def sample_rows() -> pl.DataFrame:
    return normalized_rows(SAMPLE_INFOS_DIR)


@pytest.fixture
def sample_mirror(tmp_path, sample_rows, monkeypatch):
    """The mirror serving every upstream of the bundled sample, with settings pointed at it."""
    mirror = start_mirror(sample_rows, tmp_path / "mirror", monkeypatch)
    yield mirror
    mirror.stop()


@pytest.fixture
def materializer(instance) -> Materializer:
    """Build it after the fixtures that set the environment (mirror settings) have run."""
    return Materializer(instance)
