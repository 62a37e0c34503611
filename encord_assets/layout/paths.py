"""The one place that knows the layout: ROOT/<save_folder>/<dir>/<file_name>.

Every path the project writes is built here, and every component that comes from an
infos row or an upstream archive is checked here before it can reach the filesystem.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from encord_assets.lazy import pl
from encord_assets.settings import DEFAULT_AUDIO_DIR

# save_folder values used by E-MM1 infos (old phase names, current split names, EShot).
KNOWN_SAVE_FOLDERS = (
    "phase_1_only",
    "phase_2_only",
    "shared",
    "e-mm1_100m_only",
    "e-mm1_1m_only",
    "eshot",
)
MAX_NAME_BYTES = 255
ESHOT_AUDIO_DIR = "audio"
BOOKKEEPING_DIR = "_encord_assets"


class UnsafePath(ValueError):
    """A path component or target that could escape ROOT or is not a plain file name."""


def unsafe_component_reason(value: pl.Expr) -> pl.Expr:
    """Why a string column is not a single safe path component (null when it is safe)."""
    return (
        pl.when(value.is_null() | (value.str.strip_chars() == ""))
        .then(pl.lit("empty"))
        .when(value.str.contains("\x00", literal=True))
        .then(pl.lit("contains NUL"))
        .when(value.str.contains("/", literal=True))
        .then(pl.lit("contains '/'"))
        .when(value.str.contains("\\", literal=True))
        .then(pl.lit("contains '\\'"))
        .when(value.is_in([".", ".."]))
        .then(pl.lit("is '.' or '..'"))
        .when(value.str.contains(r"[\x01-\x1f\x7f]"))
        .then(pl.lit("contains a control character"))
        .when(value.str.contains("\ufffd", literal=True))
        .then(pl.lit("is not valid UTF-8"))
        .when(value.str.len_bytes() > MAX_NAME_BYTES)
        .then(pl.lit(f"longer than {MAX_NAME_BYTES} bytes"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def unsafe_component(value: pl.Expr) -> pl.Expr:
    """True exactly where `unsafe_component_reason` gives a reason: its rules as one boolean, cheaper
    to evaluate on every row (one regex: blank (`\\s` is the whitespace `strip_chars` strips), `.`
    or `..`, or a character of one class for NUL, slashes, control characters and U+FFFD; half the
    cost of testing blank and `.`/`..` apart)."""
    return (
        value.is_null()
        | value.str.contains(r"^(?:\s*|\.\.?)$|[\x00-\x1f\x7f/\\\x{fffd}]")
        | (value.str.len_bytes() > MAX_NAME_BYTES)
    )


# Names made only of these characters are safe by every rule of unsafe_component_reason: the common
# case is decided without building a polars expression (~0.3 ms a call, which dominates bulk copies).
PLAIN_NAME = re.compile(r"[A-Za-z0-9_.+=,@-]{1,%d}" % MAX_NAME_BYTES)


def check_component(value: str) -> str:
    """Return `value` if it is a single safe path component, else raise UnsafePath."""
    if PLAIN_NAME.fullmatch(value) and value not in (".", ".."):
        return value
    reason = pl.select(unsafe_component_reason(pl.lit(value, dtype=pl.String))).item()
    if reason is not None:
        raise UnsafePath(f"{value!r} is not a safe file or folder name: {reason}")
    return value


def target_expr(audio_dir: str = DEFAULT_AUDIO_DIR) -> pl.Expr:
    """The target path relative to ROOT for normalized infos rows (columns modality, save_folder, file_name)."""
    folder = (
        pl.when(pl.col("modality") != "audio")
        .then(pl.col("modality"))
        .when(pl.col("save_folder") == "eshot")
        .then(pl.lit(ESHOT_AUDIO_DIR))
        .otherwise(pl.lit(audio_dir))
    )
    return pl.concat_str([pl.col("save_folder"), folder, pl.col("file_name")], separator="/")


def layout_key(relative: str) -> str:
    """`relative` (a target from an infos row) checked to be a file inside the layout: every
    component safe, and not under the bookkeeping folder."""
    parts = relative.split("/")
    for part in parts:
        check_component(part)
    if parts[0] == BOOKKEEPING_DIR:
        raise UnsafePath(f"{relative!r} is inside the bookkeeping folder {BOOKKEEPING_DIR}/, not the dataset layout")
    return relative


def unsafe_layout_keys(targets: pl.Series) -> dict[str, str]:
    """The targets `layout_key` refuses, each with its message. The rules are checked on the whole
    column at once (a partition's targets are thousands); only a refused one is checked again alone,
    for its message."""
    parts = pl.col("target").str.split("/")
    refused = pl.DataFrame({"target": targets}, schema={"target": pl.String}).filter(
        parts.list.eval(unsafe_component_reason(pl.element()).is_not_null()).list.any()
        | (parts.list.first() == BOOKKEEPING_DIR)
    )
    problems = {}
    for target in refused["target"].unique(maintain_order=True):
        try:
            layout_key(target)
        except UnsafePath as error:
            problems[target] = str(error)
    return problems


def bookkeeping_key(*parts: str) -> str:
    return "/".join((BOOKKEEPING_DIR, *parts))


def partition_file_stem(partition_key: str) -> str:
    return partition_key.replace("|", "__")


def manifest_key(asset_name: str, partition_key: str) -> str:
    return bookkeeping_key("manifests", asset_name, f"{partition_file_stem(partition_key)}.parquet")


def verified_key(check_name: str, asset_name: str, partition_key: str) -> str:
    return bookkeeping_key("verified", check_name, asset_name, f"{partition_file_stem(partition_key)}.parquet")


def staging_key(asset_name: str, partition_key: str) -> str:
    return bookkeeping_key("staging", asset_name, partition_file_stem(partition_key))


def table_key(asset_name: str, partition_key: str | None) -> str:
    return bookkeeping_key("tables", asset_name, f"{partition_file_stem(partition_key) if partition_key else 'all'}.parquet")


def temporary_sibling(path: Path) -> Path:
    """A unique name beside `path`, so a rename into place is atomic on the same filesystem."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def write_atomically(path: Path, write) -> None:
    """Call write(tmp_path), then rename tmp_path to path: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
