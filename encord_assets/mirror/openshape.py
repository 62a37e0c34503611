"""OpenShape's training data on the mirror's Hugging Face Hub: real tar.gz archives of .npy files.

`3D-FUTURE.tar.gz`, `ABO.tar.gz`, `ShapeNet.tar.gz` and `Objaverse/000-000.tar.gz` ...
`000-159.tar.gz`, laid out as upstream: each shape is `<dirs>/<file_id>.npy` at some depth,
among shapes nobody asked for, a text file and directory entries. The arrays are real
(numpy.save), xyz + rgb per point, and depend only on the file id. The sample's Objaverse
ids are spread over the first archives so the demo reaches them early; the other
archives hold only unneeded shapes.
"""

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import polars as pl

from encord_assets.mirror import hf_hub
from encord_assets.mirror.media import seed_of
from encord_assets.mirror.server import Mirror
from encord_assets.settings import OPENSHAPE_REPO_ID as REPO_ID
from encord_assets.sources.openshape import archive_path
from encord_assets.sources.registry import SOURCES

SINGLE_ARCHIVES = ("3D-FUTURE", "ABO", "ShapeNet")
OBJAVERSE_KEYS = next(spec.partitions.keys for spec in SOURCES if spec.dataset == "Objaverse")
OBJAVERSE_USED = 4  # archives that receive the infos' Objaverse ids
FIXED_MTIME = 1_483_228_800  # 2017-01-01


def point_cloud(file_id: str, points: int = 2048) -> bytes:
    """The .npy bytes the mirror holds for `file_id`: float32 (points, 6), xyz then rgb."""
    rng = np.random.default_rng(seed_of(f"points:{file_id}"))
    cloud = np.concatenate([rng.normal(size=(points, 3)), rng.uniform(size=(points, 3))], axis=1).astype(np.float32)
    out = io.BytesIO()
    np.save(out, cloud)
    return out.getvalue()


def member_name(folder: str, file_id: str) -> str:
    """Members sit at varying depths, as in the real archives."""
    depth = seed_of(f"depth:{file_id}") % 3
    shard = hashlib.sha1(file_id.encode()).hexdigest()[:2]
    return "/".join([folder, *[shard, "pc"][:depth], f"{file_id}.npy"])


def write_tar_gz(path: Path, members: dict[str, bytes | None]) -> None:
    """A tar.gz with fixed timestamps (byte-identical on every build); None makes a directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".building")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.mtime = FIXED_MTIME
                if data is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                else:
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)


def archive_members(folder: str, needed: list[str], decoys: int) -> dict[str, bytes | None]:
    """Needed shapes interleaved with unneeded ones, behind a directory entry and a readme."""
    decoy_ids = [hashlib.md5(f"decoy:{folder}:{n}".encode()).hexdigest() for n in range(decoys)]
    ids = sorted(set(needed) | set(decoy_ids), key=lambda i: seed_of(f"order:{i}"))
    members: dict[str, bytes | None] = {f"{folder}/": None, f"{folder}/README.txt": b"OpenShape point clouds\n"}
    for file_id in ids:
        members[member_name(folder, file_id)] = point_cloud(file_id, 2048 if file_id in needed else 512)
    return members


def objaverse_archive(file_id: str) -> str:
    return OBJAVERSE_KEYS[seed_of(f"archive:{file_id}") % OBJAVERSE_USED]


def build(rows: pl.DataFrame, content_dir: Path, decoys: int = 3) -> None:
    repo = hf_hub.repo_dir(content_dir, REPO_ID)
    ids = {name: sorted(set(rows.filter(pl.col("source_dataset") == name)["file_id"])) for name in (*SINGLE_ARCHIVES, "Objaverse")}
    for name in SINGLE_ARCHIVES:
        write_tar_gz(repo / archive_path(name, name), archive_members(name, ids[name], decoys))
    for key in OBJAVERSE_KEYS:
        needed = [i for i in ids["Objaverse"] if objaverse_archive(i) == key]
        write_tar_gz(repo / archive_path("Objaverse", key), archive_members(key, needed, decoys))


def routes(mirror: Mirror) -> None:
    hf_hub.routes(mirror)


def env(mirror: Mirror) -> dict[str, str]:
    return hf_hub.env(mirror)
