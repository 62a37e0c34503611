"""`encord-assets demo`: the whole pipeline on an infos folder, against the local mirror."""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl

from encord_assets.infos.assets import describe_reject
from encord_assets.infos.files import MODALITIES, SAMPLE_INFOS_DIR, infos_file, splits_for
from encord_assets.infos.normalize import normalize
from encord_assets.materialize import Materializer
from encord_assets.mirror import openimages
from encord_assets.mirror.build import attach, build_content
from encord_assets.mirror.server import Mirror
from encord_assets.operations.instance import install_instance_yaml, relax_sqlite_durability, set_pool_limits
from encord_assets.products.coverage import coverage, problem_rows, read_rejects
from encord_assets.store import DatasetStore
from encord_assets.store.store import is_object_url


def normalized_rows(infos_dir: Path) -> pl.DataFrame:
    """Every valid routed row of every split, for building the mirror (the assets redo this in Dagster)."""
    frames = []
    for modality in MODALITIES:
        if modality == "text":
            continue
        for split in splits_for(modality):
            path = infos_file(infos_dir, split, modality)
            if path is not None:
                frames.append(normalize(path, path.name, split, modality).rows.collect())
    return pl.concat(frames)


def write_dotenv(directory: Path, values: dict[str, str]) -> None:
    """Let `dagster dev` started from this folder find the demo's instance and data."""
    env_file = directory / ".env"
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    keep = [line for line in lines if line.split("=", 1)[0].strip() not in values]
    env_file.write_text("\n".join(keep + [f"{k}={v}" for k, v in values.items()]) + "\n")


def print_report(store: DatasetStore, fetched_bytes: int, failures: list[str], seconds: float) -> int:
    table = coverage(store)
    with pl.Config(tbl_rows=200, tbl_cols=20, tbl_width_chars=200, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(table)
    rejects = read_rejects(store)
    if rejects.height:
        print(f"\n{rejects.height} infos row(s) rejected or routed to no source:")
        for row in rejects.iter_rows(named=True):
            print(f"  {describe_reject(row)}")
    problems = problem_rows(store)
    if problems.height:
        print(f"\n{problems.height} row(s) not placed:")
        for row in problems.iter_rows(named=True):
            print(f"  {row['infos_file']} row {row['infos_row']} {row['target']}: {row['outcome']} {row['error_class']}: {row['error_message']}")
    print(f"\nupstream bytes fetched this run: {fetched_bytes}; {seconds:.1f} s")
    if failures:
        print(f"runs that failed: {', '.join(failures)}")
    return 1 if problems.height or failures else 0


def serve_openimages(openimages_dir: Path | None, classes: str, mirror_dir: Path) -> dict[str, str]:
    """Add the Open Images emulation of the CSVs in `openimages_dir` (None: none) to the mirror's
    files; returns the settings that choose its classes."""
    if openimages_dir is None:
        return {}
    found = openimages.build(Path(openimages_dir), mirror_dir)
    print(f"Open Images CSVs: {openimages_dir} ({len(found['found'])} upstream files; absent: {', '.join(found['absent']) or 'none'})")
    return {"OPENIMAGES_CLASSES": classes}


@contextmanager
def offline_upstreams(
    infos_dir: Path | None, root: str, dagster_home: Path, mirror_dir: Path, openimages_dir: Path | None, openimages_classes: str
) -> Iterator[Mirror]:
    """The mirror serving every upstream file the infos name (plus the Open Images emulation of the CSVs
    in `openimages_dir`; None: none), an instance in `dagster_home` with the project's dagster.yaml and
    pool limits, and this process's environment pointing ROOT, the infos, the instance and every
    upstream setting at them, for the demo and for `encord-assets dev`."""
    infos_dir = Path(infos_dir or SAMPLE_INFOS_DIR).absolute()
    root = root if is_object_url(root) else str(Path(root).absolute())
    dagster_home, mirror_dir = dagster_home.absolute(), mirror_dir.absolute()
    if install_instance_yaml(dagster_home):
        print(f"wrote {dagster_home / 'dagster.yaml'} (run queue and pool limits)")
    print(f"infos: {infos_dir}\nROOT: {root}\nDAGSTER_HOME: {dagster_home}")
    build_content(normalized_rows(infos_dir), mirror_dir)
    chosen_classes = serve_openimages(openimages_dir, openimages_classes, mirror_dir)
    with Mirror(mirror_dir) as mirror:
        os.environ.update(
            {"ROOT_DATA_PATH": root, "ENCORD_INFOS_DIR": str(infos_dir), "DAGSTER_HOME": str(dagster_home), **attach(mirror), **chosen_classes}
        )
        print(f"upstream mirror: {mirror.url} (every upstream setting points at it)", flush=True)
        with dg.DagsterInstance.get() as instance:
            set_pool_limits(instance)
        yield mirror


def run_demo(
    infos_dir: Path | None,
    root: str,
    dagster_home: Path,
    mirror_dir: Path,
    openimages_dir: Path | None = openimages.SAMPLE_DIR,
    openimages_classes: str = openimages.SAMPLE_CLASSES,
) -> int:
    """`root` is a local folder or an s3:// URL (endpoint and credentials from the AWS_* variables);
    `openimages_dir` holds official-format Open Images CSVs (None: no Open Images)."""
    started = time.monotonic()
    relax_sqlite_durability()
    with offline_upstreams(infos_dir, root, dagster_home, mirror_dir, openimages_dir, openimages_classes) as mirror:
        with dg.DagsterInstance.get() as instance:
            materializer = Materializer(instance, say=lambda line: print(line, flush=True))
            materializer.everything(openimages=openimages_dir is not None)
        fetched = mirror.stats()["bytes_sent"]
    write_dotenv(Path.cwd(), {name: os.environ[name] for name in ("DAGSTER_HOME", "ROOT_DATA_PATH", "ENCORD_INFOS_DIR")})
    code = print_report(materializer.store, fetched, materializer.failures, time.monotonic() - started)
    # the mirror stops with the demo: a UI run would go to the real upstreams without it
    print("To browse these runs and launch more offline: uv run encord-assets dev (the web UI against the mirror)")
    return code
