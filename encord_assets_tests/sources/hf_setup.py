"""Infos folders and mirrors for the Hugging Face source tests: a few chosen rows, an upstream
repository built around them (with many unneeded entries), served by the mirror."""

import hashlib
from collections.abc import Callable
from pathlib import Path

import polars as pl

from encord_assets.demo import normalized_rows
from encord_assets.layout.paths import manifest_key
from encord_assets.mirror.build import attach
from encord_assets.mirror.server import Mirror

HEADERS = {
    "image": "encord_image_id,source_dataset,dataset_license,file_id,file_name,save_folder",
    "video": "encord_video_id,source_dataset,dataset_license,youtube_id,start_time,end_time,file_id,file_name,save_folder",
}
SPLIT = "e-mm1_1m"
SAVE_FOLDER = "e-mm1_1m_only"


def write_infos(infos_dir: Path, modality: str, dataset: str, file_ids: list[str], suffix: str) -> None:
    lines = [HEADERS[modality]]
    for n, file_id in enumerate(file_ids):
        middle = f"{dataset},custom,{file_id}" if modality == "image" else f"{dataset},CC-BY-4.0,,,,{file_id}"
        lines.append(f"{n},{middle},{file_id}{suffix},{SAVE_FOLDER}")
    path = infos_dir / SPLIT / "infos" / f"{modality}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def serve(tmp_path: Path, monkeypatch, build: Callable[[pl.DataFrame, Path], None], tweak: Callable[[Path], None] | None = None) -> Mirror:
    """Build upstream content for the infos in tmp_path/infos, optionally damage it, serve it,
    and point the settings at it (pinned revisions are computed from what is served)."""
    infos_dir = tmp_path / "infos"
    content = tmp_path / "mirror"
    build(normalized_rows(infos_dir), content)
    if tweak:
        tweak(content)
    mirror = Mirror(content).start()
    point_at(mirror, monkeypatch)
    monkeypatch.setenv("ENCORD_INFOS_DIR", str(infos_dir))
    return mirror


def point_at(mirror: Mirror, monkeypatch) -> None:
    for name, value in attach(mirror).items():
        monkeypatch.setenv(name, value)


def manifest(root: Path, asset: str, key: str) -> pl.DataFrame:
    return pl.read_parquet(root / manifest_key(asset, key))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
