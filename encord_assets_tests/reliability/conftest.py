"""The packed sample (every source of the registry, one partition per source and split), its mirror
content, and the files a fault-free run places: the reference every reliability test compares with."""

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from encord_assets.demo import normalized_rows
from encord_assets.infos.files import SAMPLE_INFOS_DIR
from encord_assets.materialize import Materializer
from encord_assets.mirror.build import build_content
from encord_assets.operations.instance import install_instance_yaml
from encord_assets.settings import BY_NAME
from encord_assets_tests.conftest import start_mirror
from encord_assets_tests.reliability.support import (
    FETCHERS,
    TESTED_SPECS,
    layout_files,
    pack_infos,
    partitions_of,
    prepare,
    settle,
    specs_of,
)


@dataclass
class Packed:
    infos_dir: Path
    rows: pl.DataFrame  # normalized rows of the fetchers under test
    content_dir: Path
    reference: dict[str, str]  # target -> sha256 placed by a fault-free run
    partitions: dict[str, list[tuple[str, str]]]  # fetcher -> (asset, partition key)


@pytest.fixture(scope="session")
def packed(tmp_path_factory) -> Packed:
    base = tmp_path_factory.mktemp("packed")
    infos_dir = base / "infos"
    shutil.copytree(SAMPLE_INFOS_DIR, infos_dir)
    # YouTube clips are the slow part: their 1M and EShot rows cover every YouTube asset already
    for modality in ("video", "audio"):
        (infos_dir / "e-mm1_100m" / "infos" / f"{modality}.csv").unlink()
    pack_infos(infos_dir)
    names = [spec.name for spec in TESTED_SPECS]
    rows = normalized_rows(infos_dir).filter(pl.col("source").is_in(names))
    content_dir = base / "mirror"
    build_content(rows, content_dir)
    root = base / "reference_root"
    home = Path(tempfile.mkdtemp(prefix="encord_reference_home_", dir="/dev/shm" if Path("/dev/shm").is_dir() else base))
    install_instance_yaml(home)
    with pytest.MonkeyPatch.context() as patch:
        for name in BY_NAME:
            patch.delenv(name, raising=False)
        patch.setenv("ROOT_DATA_PATH", str(root))
        patch.setenv("DAGSTER_HOME", str(home))
        patch.setenv("ENCORD_INFOS_DIR", str(infos_dir))
        patch.setenv("HF_HOME", str(base / "hf_home"))
        mirror = start_mirror(None, content_dir, patch)
        try:
            with dg.DagsterInstance.get() as instance:
                materializer = Materializer(instance)
                prepare(materializer, TESTED_SPECS)
                partitions = {f: partitions_of(materializer, specs_of(f)) for f in FETCHERS}
                settle(materializer, root, [p for f in FETCHERS for p in partitions[f]], max_rounds=1)
        finally:
            mirror.stop()
            shutil.rmtree(home, ignore_errors=True)
    reference = layout_files(root)
    assert set(reference) == set(rows["target"])
    return Packed(infos_dir, rows, content_dir, reference, partitions)


@pytest.fixture
def packed_mirror(packed, monkeypatch):
    """The mirror serving the packed sample's upstreams, with every setting (and the infos) pointed at it."""
    monkeypatch.setenv("ENCORD_INFOS_DIR", str(packed.infos_dir))
    mirror = start_mirror(None, packed.content_dir, monkeypatch)
    yield mirror
    mirror.stop()
