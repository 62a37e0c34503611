"""`encord-assets demo` end to end, as a user runs it: twice, the second run fetching nothing."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from encord_assets.infos.files import SAMPLE_INFOS_DIR

pytestmark = pytest.mark.long_running


def run_demo(cwd, *options):
    return subprocess.run(
        [sys.executable, "-m", "encord_assets.cli", "demo", *options], cwd=cwd, capture_output=True, text=True, timeout=1800
    )


@pytest.mark.timeout(3600)  # a safety net: two demo runs take about 3 minutes on an idle 2-core machine
def test_demo_places_every_row_then_a_second_run_fetches_nothing(tmp_path, monkeypatch):
    first = run_demo(tmp_path)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "not placed" not in first.stdout and "runs that failed" not in first.stdout
    fetched = int(re.search(r"upstream bytes fetched this run: (\d+)", first.stdout).group(1))
    assert fetched > 0
    placed = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and "_encord_assets" not in p.parts]
    assert any(p.parent.name == "image" for p in placed) and any(p.parent.name == "video" for p in placed)
    assert (tmp_path / "data" / "captions" / "e-mm1_1m.parquet").is_file()
    assert "DAGSTER_HOME=" in (tmp_path / ".env").read_text()
    # a progress line per partition run of an asset, the last one complete
    progress = re.findall(r"^image_coco: (\d+)/(\d+) partitions, \d+ rows, [\d.]+ MB, \d+ s elapsed, ETA \d+ s$", first.stdout, re.M)
    assert progress and progress[-1][0] == progress[-1][1]
    assert "encord-assets dev" in first.stdout
    # named runs with evaluated checks, as the UI shows them
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / ".dagster_home"))  # the project's dagster.yaml reads it
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="fill_image_coco"))
        assert len(runs) == int(progress[-1][1]) and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        check = dg.AssetCheckKey(dg.AssetKey("image_coco"), "no_failed_rows")
        assert instance.event_log_storage.get_latest_asset_check_execution_by_key([check])

    second = run_demo(tmp_path)
    assert second.returncode == 0, second.stdout[-4000:]
    assert "upstream bytes fetched this run: 0;" in second.stdout
    # every source row of the coverage table is now already present: no placed, failed or unavailable rows
    for line in second.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│").split("┆")]
        if len(cells) == 10 and not cells[2].startswith("(") and cells[3].isdigit():
            rows, placed_now, present = int(cells[3]), int(cells[4]), int(cells[5])
            assert (placed_now, present) == (0, rows), line


def layout_puts(log_lines: list[str], bucket: str) -> list[str]:
    """Uploads (PUT, or POST of a multipart upload) to keys of the layout, from the server's request log."""
    keys = [line.split()[2].split("?")[0] for line in log_lines if line.split()[1] in ("PUT", "POST")]
    return [k for k in keys if k.startswith(f"/{bucket}/") and "/_encord_assets/" not in k and "/captions/" not in k]


def small_infos(folder: Path) -> Path:
    """A few COCO images and YouTube clips of the bundled sample: enough to cross every path of the
    store (small and multipart uploads, manifests, tables, reports) in a fraction of the demo's runs."""
    for modality, source, keep in (("image", "COCO", 4), ("video", "Valor", 2)):
        lines = (SAMPLE_INFOS_DIR / "e-mm1_1m" / "infos" / f"{modality}.csv").read_text().splitlines()
        rows = [line for line in lines[1:] if f",{source}," in line][:keep]
        target = folder / "e-mm1_1m" / "infos" / f"{modality}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join([lines[0], *rows]) + "\n")
    return folder


# two demo runs talking to the server: longer than the default timeout
@pytest.mark.timeout(1800)
def test_demo_on_object_storage_through_the_objectstore_command(tmp_path):
    """`encord-assets objectstore` then `encord-assets demo --root s3://...` twice, and `status` there."""
    infos = small_infos(tmp_path / "infos")
    server = subprocess.Popen(
        [sys.executable, "-m", "encord_assets.cli", "objectstore", "--dir", str(tmp_path / "s3")],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        exports = {}
        while len(exports) < 5:
            line = server.stdout.readline()
            assert line, "the objectstore command ended early"
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = value
        assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ROOT_DATA_PATH"))} | exports
        root = f"s3://{exports['ENCORD_OBJECTSTORE_BUCKET']}/e-mm1"
        log = tmp_path / "s3" / "requests.log"

        def run(*args):
            return subprocess.run([sys.executable, "-m", "encord_assets.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)

        first = run("demo", "--root", root, "--infos", str(infos), "--no-openimages")
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
        uploads = layout_puts(log.read_text().splitlines(), exports["ENCORD_OBJECTSTORE_BUCKET"])
        assert any("/image/" in k for k in uploads) and any("/video/" in k for k in uploads)
        seen = len(log.read_text().splitlines())

        second = run("demo", "--root", root, "--infos", str(infos), "--no-openimages")
        assert second.returncode == 0, second.stdout[-4000:]
        assert "upstream bytes fetched this run: 0;" in second.stdout
        assert layout_puts(log.read_text().splitlines()[seen:], exports["ENCORD_OBJECTSTORE_BUCKET"]) == []

        status = run("status", "--root", root)
        assert status.returncode == 0 and "already_present" in status.stdout and "image_coco" in status.stdout, status.stdout + status.stderr
        assert exports["AWS_SECRET_ACCESS_KEY"] not in first.stdout + first.stderr + second.stdout + status.stdout
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_demo_completes_when_times_are_infinite_or_nan(tmp_path):
    """Such rows once passed validation and crashed the mirror builder (OverflowError)."""
    infos = tmp_path / "infos" / "e-mm1_1m" / "infos" / "video.csv"
    infos.parent.mkdir(parents=True)
    infos.write_text(
        "encord_video_id,source_dataset,dataset_license,youtube_id,start_time,end_time,file_id,file_name,save_folder\n"
        "1,Valor,MIT,abcdefghijk,1.0,3.0,,good.mp4,e-mm1_1m_only\n"
        "2,Valor,MIT,abcdefghijl,1.0,inf,,inf.mp4,e-mm1_1m_only\n"
        "3,Valor,MIT,abcdefghijm,nan,3,,nan.mp4,e-mm1_1m_only\n"
    )
    done = run_demo(tmp_path, "--infos", str(tmp_path / "infos"))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "e-mm1_1m/infos/video.csv row 2: end_time='inf': not a finite number" in done.stdout
    assert "e-mm1_1m/infos/video.csv row 3: start_time='nan': not a finite number" in done.stdout
    assert (tmp_path / "data" / "e-mm1_1m_only" / "video" / "good.mp4").is_file()
