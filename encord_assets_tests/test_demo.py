"""`encord-assets demo` end to end, as a user runs it: twice, the second run fetching nothing."""

import re
import subprocess
import sys

import dagster as dg
import pytest


def run_demo(cwd):
    return subprocess.run(
        [sys.executable, "-m", "encord_assets.cli", "demo"], cwd=cwd, capture_output=True, text=True, timeout=1800
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
