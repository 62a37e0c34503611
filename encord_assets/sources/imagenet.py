"""ImageNet train images from `ILSVRC/imagenet-1k`'s parquet files, by row group.

The guide reads only the first of the 294 parquet files. Here an index asset reads, for every
file, only its footer and the `image.path` column chunks (`ParquetFile.read(columns=...)`
over a `cache_type="none"` file: about 0.1% of the file) and records file, row group and row
for each image id. A partition then reads, file by file, only the row groups that hold its
images (the `image` column, nothing else) and writes each image's original JPEG bytes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import dagster as dg

from encord_assets.lazy import pl
from encord_assets.ledger import FetchLedger
from encord_assets.sources.hf import HfDatasetSource, stem_of
from encord_assets.sources.retry import record_error
from encord_assets.sources.work import PartitionWork

INDEX_SCHEMA = {
    "file_id": str,
    "file": str,
    "file_size": int,
    "row_group": int,
    "row": int,
    "revision": str,
}


class ImageNetParquet(HfDatasetSource):
    """ImageNet images from the parquet files of a Hugging Face dataset repository."""

    repo_id: str = "ILSVRC/imagenet-1k"
    files: str = "data/train-*.parquet"
    max_image_bytes: int = 64 << 20

    def build_index(self, context: dg.AssetExecutionContext, revision: str) -> tuple[pl.DataFrame, dict]:
        import pyarrow.parquet as pq

        fs = self.filesystem()

        def read(path: str, size: int, counter: FetchLedger) -> pl.DataFrame:
            with self.open(fs, revision, path, size, counter, cache_type="none") as f:
                parquet = pq.ParquetFile(f)
                paths = parquet.read(columns=["image.path"]).column("image").combine_chunks().field("path")
                groups = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
            return pl.DataFrame(
                {
                    "file_id": [stem_of(p) for p in paths.to_pylist()],
                    "file": path,
                    "file_size": size,
                    "row_group": [g for g, n in enumerate(groups) for _ in range(n)],
                    "row": [r for n in groups for r in range(n)],
                    "revision": revision,
                },
                schema=INDEX_SCHEMA,
            )

        return self.index_files(context, revision, "the image.path column", read, INDEX_SCHEMA)

    def fetch(self, work: PartitionWork, index: pl.LazyFrame) -> None:
        rows, log = work.rows, work.ledger
        wanted, found, commit = self.look_up(rows, index, log, f"{self.files} file")
        fs = self.filesystem()
        by_file = found.sort("file", "row_group", "row").partition_by("file", as_dict=True)
        work.log.info(
            f"reading {found.select('file', 'row_group').n_unique()} row group(s) of {len(by_file)} parquet file(s) for {found.height} images"
        )

        def read_file(item) -> None:
            (path,), places = item
            try:
                self._read_row_groups(fs, commit, path, places, wanted, log)
            except Exception as error:  # noqa: BLE001 - the file itself failed (not found, no footer)
                fail(places, error, log, wanted)

        # files in parallel, row groups of one file in order: a row group is ~10 MB, so its two round
        # trips (/resolve, then the CDN) cost under a tenth of its transfer on a 200 Mbit/s, 20 ms link
        with ThreadPoolExecutor(self.connections) as pool:
            list(pool.map(read_file, by_file.items()))

    def _read_row_groups(self, fs, commit: str, path: str, places: pl.DataFrame, wanted: dict[str, list[str]], log: FetchLedger) -> None:
        import pyarrow.parquet as pq

        with self.open(fs, commit, path, places["file_size"][0], log, cache_type="none") as f:
            parquet = self.retry.call(lambda: pq.ParquetFile(f))
            for (group,), at in places.partition_by("row_group", as_dict=True, maintain_order=True).items():
                try:
                    images = self.retry.call(partial(parquet.read_row_group, group, columns=["image"]))
                except Exception as error:  # noqa: BLE001 - a corrupt row group fails its rows only
                    fail(at, error, log, wanted)
                    continue
                self._stage_rows(path, group, images.column("image").combine_chunks(), at, wanted, log)

    def _stage_rows(self, path: str, group: int, images, at: pl.DataFrame, wanted: dict[str, list[str]], log: FetchLedger) -> None:
        for file_id, row in at.select("file_id", "row").iter_rows():
            targets = wanted[file_id]
            image = images[row]
            data = image["bytes"].as_py()
            if stem_of(image["path"].as_py() or "") != file_id:
                problem = ("index_mismatch", f"{path} row group {group} row {row} is not {file_id}: materialize the index again")
            elif not data or len(data) > self.max_image_bytes:
                problem = ("bad_image", f"{file_id} in {path} has {len(data or b'')} bytes")
            else:
                staged = log.staging_path()
                staged.write_bytes(data)
                log.staged_all(targets, staged, len(data))
                continue
            for target in targets:
                log.unavailable(target, *problem)


def fail(places: pl.DataFrame, error: Exception, log: FetchLedger, wanted: dict[str, list[str]]) -> None:
    """Record `error` for every target of `places` that has no outcome yet."""
    targets = [target for file_id in places["file_id"] for target in wanted[file_id]]
    record_error(log, [target for target in targets if not log.has_result(target)], error)


# the resource the registry names by this module's name (sources/registry.py)
RESOURCE = ImageNetParquet
