"""Promise 6: a staging write failing with ENOSPC fails the partition cleanly (no partial file at a final
path, a clear message) and a later run completes.

The disk is a real small filesystem: the way to get one without privileges is a tmpfs
mounted over ROOT inside a user + mount namespace (`unshare -rm`); the run is the real CLI inside it.
"""

import os
import shutil
import subprocess

import polars as pl

from encord_assets.layout.paths import manifest_key
from encord_assets_tests.reliability.support import layout_files, materialize_command, staging_leftovers

SCRIPT = """
set -e
cp -a "$ROOT" "$OUT/before"
mount -t tmpfs -o size=1m tmpfs "$ROOT"
cp -a "$OUT/before/." "$ROOT/"
# leave room for one image and the manifest, not for the whole partition
free=$(df -B1 --output=avail "$ROOT" | tail -1)
head -c $((free - ROOM)) /dev/zero > "$ROOT/filler"
set +e
"$@" > "$OUT/run.log" 2>&1
echo $? > "$OUT/exit_code"
rm "$ROOT/filler"
cp -a "$ROOT/." "$OUT/after/"
"""


def test_enospc_while_staging_fails_cleanly_then_a_later_run_completes(packed, packed_mirror, materializer, root, tmp_path, monkeypatch):
    monkeypatch.setenv("COCO_METHOD", "images")
    monkeypatch.setenv("COCO_THREADS", "1")
    materializer.infos("image")
    asset, key = packed.partitions["coco"][0]
    targets = packed.rows.filter((pl.col("source") == asset) & (pl.col("partition_key") == key))["target"].to_list()
    assert len(targets) >= 3
    out = tmp_path / "out"
    (out / "after").mkdir(parents=True)
    room = 20 << 10
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", SCRIPT, "sh", *materialize_command(asset, key)],
        env={**os.environ, "ROOT": str(root), "OUT": str(out), "ROOM": str(room)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,  # the script's own status is asserted below
    )
    assert result.returncode == 0, result.stderr
    log = (out / "run.log").read_text()
    assert (out / "exit_code").read_text().strip() != "0", log[-3000:]

    after = out / "after"
    # no partial file: whatever reached a final path is a whole file of the reference run
    placed = layout_files(after)
    assert all(packed.reference[t] == sha for t, sha in placed.items())
    assert len(placed) < len(targets)
    # the message: in the manifest when it fit on the disk, else in the run's failure
    if (after / manifest_key(asset, key)).exists():
        found = pl.read_parquet(after / manifest_key(asset, key))
        failed = found.filter(pl.col("outcome") == "failed")
        assert failed.height and set(failed["error_class"]) == {"disk_full"}
        assert all("No space left on device" in m for m in failed["error_message"])
        assert "disk_full: no space left on the device of ROOT while staging" in log
    else:
        assert "could not write the manifest" in log and "No space left on device" in log
    assert staging_leftovers(after) == []

    # the disk has room again: the next run completes and fetches only what is missing
    shutil.rmtree(root)
    shutil.copytree(after, root)
    assert materializer.run(asset, key).success
    assert layout_files(root) == {t: packed.reference[t] for t in targets}
    print(f"\ndisk full: {len(placed)} of {len(targets)} rows placed whole before the disk filled; the next run placed the rest")
