"""`release pull`: lay a release out in a local folder, every file checked against the release's sha256.

Files are hard links to ROOT's files when ROOT is a folder on the same filesystem, copies otherwise, and
downloads from an s3:// ROOT. Each goes to a temporary name beside its destination, is hashed, and is
renamed into place only when it has the release's content: a file that changed in ROOT since the release
was created is reported, never pulled. Files already at their destination with the release's content are
skipped (unless `force_replace`). A release holding Open Images masks pulls the masks of its pulled images too.
"""

import os
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from encord_assets.products.releases import ReleaseError, release_key, release_table, resolve
from encord_assets.store import DatasetStore
from encord_assets.store.backends import sha256_of

TABLES_DIR = "releases"
THREADS = 8
BATCH_ROWS = 20_000
PROBLEMS = ("changed_in_root", "missing_in_root")


@dataclass
class PullReport:
    release: str
    counts: Counter = field(default_factory=Counter)
    # (target, problem): changed_in_root, missing_in_root
    problems: list[tuple[str, str]] = field(default_factory=list)
    removed: int = 0


def destinations(files: pl.LazyFrame, use_folders: bool) -> pl.LazyFrame:
    """One row per destination: the E-MM1 layout, under the split's folder with `use_folders`."""
    dest = pl.concat_str(pl.col("split"), pl.lit("/"), pl.col("target")) if use_folders else pl.col("target")
    return files.select(dest.alias("dest"), "target", "sha256").unique("dest", keep="first")


def is_correct(path: str, sha256: str) -> bool:
    try:
        return sha256_of(path) == sha256
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False


def pull_one(store: DatasetStore, folder: Path, dest: str, target: str, sha256: str, force: bool) -> str:
    final = os.path.join(folder, dest)
    if not force and is_correct(final, sha256):
        return "already_correct"
    os.makedirs(os.path.dirname(final), exist_ok=True)
    temporary = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.pull-{uuid.uuid4().hex[:8]}")
    try:
        how = store.copy_to(target, Path(temporary))
    except FileNotFoundError:
        return "missing_in_root"
    try:
        if not is_correct(temporary, sha256):
            return "changed_in_root"
        os.replace(temporary, final)
        return how
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def lay_out(store: DatasetStore, folder: Path, planned: pl.LazyFrame, force: bool) -> tuple[Counter, list[tuple[str, str]]]:
    """Put every (dest, target, sha256) of `planned` at folder/dest; outcome counts and problem files."""
    counts, problems = Counter(), []

    def run(rows: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
        # one task per thread and batch: a future per file costs more than checking an unchanged file
        return [(target, pull_one(store, folder, dest, target, sha256, force)) for dest, target, sha256 in rows]

    with ThreadPoolExecutor(THREADS) as pool:
        for batch in planned.select("dest", "target", "sha256").collect_batches(chunk_size=BATCH_ROWS):
            rows = batch.rows()
            for done in pool.map(run, [rows[n::THREADS] for n in range(THREADS)]):
                for target, outcome in done:
                    counts[outcome] += 1
                    if outcome in PROBLEMS:
                        problems.append((target, outcome))
    return counts, problems


def pull_release(
    store: DatasetStore,
    name: str,
    folder: Path,
    only_annotations: bool = False,
    force_replace: bool = False,
    remove_extra: bool = False,
    use_folders: bool = False,
    filter_expr: str | None = None,
) -> PullReport:
    name = resolve(store, name)
    folder = Path(folder)
    files = release_table(store, name, "files")
    if filter_expr:
        try:
            files = files.filter(pl.sql_expr(filter_expr))
            files.collect_schema()
        except Exception as error:
            raise ReleaseError(f"--filter {filter_expr!r}: {str(error).splitlines()[0]}") from None
    tables = folder / TABLES_DIR / name
    tables.mkdir(parents=True, exist_ok=True)
    for key in store.find(release_key(name, "")):
        (tables / key.rsplit("/", 1)[-1]).write_bytes(store.read_bytes(key))
    report = PullReport(name)
    planned = destinations(files, use_folders)
    if (masks := release_table(store, name, "masks")) is not None:
        # the masks of the pulled Open Images images come with them
        kept = masks.join(files.select("split", "target").unique(), on=["split", "target"], how="semi")
        planned = pl.concat([planned, destinations(kept.select("split", pl.col("mask").alias("target"), pl.col("mask_sha256").alias("sha256")), use_folders)])
    if not only_annotations:
        report.counts, report.problems = lay_out(store, folder, planned, force_replace)
    if remove_extra:
        report.removed = remove_extra_files(folder, planned)
    return report


def remove_extra_files(folder: Path, planned: pl.LazyFrame) -> int:
    """Delete files under `folder` that the pull did not plan, except the release tables."""
    present = pl.LazyFrame(
        {"dest": [
            path.relative_to(folder).as_posix()
            for path in folder.rglob("*")
            if (path.is_file() or path.is_symlink()) and path.relative_to(folder).parts[0] != TABLES_DIR
        ]},
        schema={"dest": pl.String},
    )
    extra = present.join(planned.select("dest"), on="dest", how="anti").collect()["dest"]
    for dest in extra:
        (folder / dest).unlink()
    return len(extra)
