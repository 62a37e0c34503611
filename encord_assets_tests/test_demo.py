"""`encord-assets demo` end to end, as a user runs it: twice, the second run fetching nothing."""

import re
import subprocess
import sys


def run_demo(cwd, *options):
    return subprocess.run(
        [sys.executable, "-m", "encord_assets.cli", "demo", *options], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_demo_places_every_row_then_a_second_run_fetches_nothing(tmp_path):
    first = run_demo(tmp_path)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "not placed" not in first.stdout and "runs that failed" not in first.stdout
    fetched = int(re.search(r"upstream bytes fetched this run: (\d+)", first.stdout).group(1))
    assert fetched > 0
    placed = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and "_encord_assets" not in p.parts]
    assert any(p.parent.name == "image" for p in placed) and any(p.parent.name == "video" for p in placed)
    assert (tmp_path / "data" / "captions" / "e-mm1_1m.parquet").is_file()
    assert "DAGSTER_HOME=" in (tmp_path / ".env").read_text()

    second = run_demo(tmp_path)
    assert second.returncode == 0, second.stdout[-4000:]
    assert "upstream bytes fetched this run: 0;" in second.stdout
    # every source row of the coverage table is now already present: no placed, failed or unavailable rows
    for line in second.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│").split("┆")]
        if len(cells) == 10 and not cells[2].startswith("(") and cells[3].isdigit():
            rows, placed_now, present = int(cells[3]), int(cells[4]), int(cells[5])
            assert (placed_now, present) == (0, rows), line


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
