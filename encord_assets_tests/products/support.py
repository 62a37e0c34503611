"""A ROOT holding the bundled sample as if every source had run: infos tables, files and manifests,
written through the store (fetching is covered by the sources' tests; products only read what is placed)."""

import functools
import hashlib
import io
import os
from pathlib import Path

import polars as pl
from PIL import Image

from encord_assets.infos.files import MODALITIES, SAMPLE_INFOS_DIR, infos_file, splits_for
from encord_assets.infos.normalize import normalize
from encord_assets.layout.io_manager import MANIFEST_COLUMNS
from encord_assets.layout.paths import table_key
from encord_assets.store import DatasetStore


def sample_store(root) -> DatasetStore:
    return DatasetStore(root=str(root), scratch_dir=os.environ.get("ENCORD_SCRATCH_DIR", ""), upload_part_bytes=8 << 10)


@functools.cache
def content_of(target: str) -> bytes:
    """A real small JPEG for images (exports read their size), distinct bytes otherwise."""
    if target.lower().endswith((".jpg", ".jpeg", ".png", ".webp")):
        digest = hashlib.sha256(target.encode()).digest()
        buffer = io.BytesIO()
        Image.new("RGB", (16 + digest[0] % 16, 8 + digest[1] % 8), tuple(digest[2:5])).save(buffer, "JPEG")
        return buffer.getvalue()
    return f"bytes of {target}\n".encode() * 3


def place_sample(store: DatasetStore, staging: Path, missing: tuple[str, ...] = (), infos_dir: Path = SAMPLE_INFOS_DIR) -> pl.DataFrame:
    """Normalize the sample's infos (or `infos_dir`'s) into the infos tables, place a file for every target but `missing`
    (recorded unavailable), write one manifest per source; returns the normalized rows."""
    frames = []
    for modality in MODALITIES:
        for split in splits_for(modality):
            path = infos_file(infos_dir, split, modality)
            if path is None:
                continue
            rows = normalize(path, path.name, split, modality).rows.collect()
            store.write(table_key(f"infos_{modality}", split), rows.write_parquet)
            if modality != "text":
                frames.append(rows)
    rows = pl.concat(frames)
    staging.mkdir(parents=True, exist_ok=True)
    staged = []
    for n, target in enumerate(sorted(set(rows["target"]) - set(missing))):
        path = staging / f"{n}.part"
        path.write_bytes(content_of(target))
        staged.append({"staged_path": str(path), "target": target, "bytes": path.stat().st_size, "sha256": hashlib.sha256(content_of(target)).hexdigest()})
    assert all(not isinstance(r, BaseException) for r in store.place_all(staged))
    manifest = rows.with_columns(
        pl.when(pl.col("target").is_in(list(missing))).then(pl.lit("unavailable")).otherwise(pl.lit("placed")).alias("outcome"),
        pl.col("target").map_elements(lambda t: len(content_of(t)), return_dtype=pl.Int64).alias("bytes"),
        pl.col("target").map_elements(lambda t: hashlib.sha256(content_of(t)).hexdigest(), return_dtype=pl.String).alias("sha256"),
        pl.lit(None, pl.String).alias("error_class"),
        pl.lit(None, pl.String).alias("error_message"),
    ).with_columns(
        *[pl.when(pl.col("outcome") == "placed").then(pl.col(c)).alias(c) for c in ("bytes", "sha256")]
    )
    for (source,), part in manifest.group_by("source"):
        store.write_manifest(source, "000|test", part.select(MANIFEST_COLUMNS))
    return rows
