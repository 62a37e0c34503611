"""Placing a 1,000-file partition on object storage: the dataset IO manager's placement (size check,
sha256, conditional create with the checksum, `ENCORD_UPLOAD_CONCURRENCY` at a time) against a plain
boto3 `upload_file` loop over the same files, on the same local S3-compatible server, in the same run.

    uv run python benchmarks/store_upload.py [--files 1000] [--kib 40] [--rounds 2]
"""

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from encord_assets.layout.io_manager import place_staged
from encord_assets.ledger import FetchLedger
from encord_assets.store import DatasetStore
from encord_assets.store.objectstore import ObjectStore


def staged_partition(folder: Path, files: int, size: int) -> FetchLedger:
    ledger = FetchLedger(folder)
    for n in range(files):
        path = ledger.staging_path(".jpg")
        path.write_bytes(os.urandom(size))
        ledger.staged(f"shared/image/{n:06d}.jpg", path, size)
    return ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--kib", type=int, default=40, help="size of each file")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both methods, alternating; the best of each is kept")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="store_upload_"))
    best = {"boto3 upload_file loop": 0.0, "DatasetStore placement": 0.0}
    try:
        with ObjectStore(work / "server") as server:
            os.environ.update(server.environment())
            server.create_bucket("bench")
            client = server.client()
            for round_ in range(args.rounds):
                ledger = staged_partition(work / f"boto3-{round_}", args.files, args.kib << 10)
                started = time.perf_counter()
                for row in ledger.results().iter_rows(named=True):
                    client.upload_file(row["staged_path"], "bench", f"boto3-{round_}/{row['target']}")
                best["boto3 upload_file loop"] = max(best["boto3 upload_file loop"], args.files / (time.perf_counter() - started))

                ledger = staged_partition(work / f"ours-{round_}", args.files, args.kib << 10)
                store = DatasetStore(root=f"s3://bench/ours-{round_}", scratch_dir=str(work / "scratch"))
                started = time.perf_counter()
                placed, _ = place_staged(store, ledger.results())
                elapsed = time.perf_counter() - started
                assert [row["outcome"] for row in placed] == ["placed"] * args.files
                best["DatasetStore placement"] = max(best["DatasetStore placement"], args.files / elapsed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    baseline = best["boto3 upload_file loop"]
    print(f"{args.files} files of {args.kib} KiB, best of {args.rounds} round(s), local S3-compatible server (moto) on 127.0.0.1\n")
    print("| method | files/s | ratio |")
    print("|---|---|---|")
    for name, rate in best.items():
        print(f"| {name} | {rate:.0f} | {rate / baseline:.2f}x |")


if __name__ == "__main__":
    main()
