"""Which upstream archive holds which file id, learnt by reading the archives themselves.

For upstreams that publish no id -> archive mapping (OpenShape's Objaverse archives), each
pass over an archive records the ids of the members it read, under
`ROOT/_encord_assets/archive_index/<asset>/`:
- `<archive>.parquet`: every id of an archive read to its end;
- `<archive>.partial.parquet`: ids seen by passes that stopped early (all needed members found);
- `not_in_any_archive.parquet`: targets found in no archive once every archive was read,
  with the partition that reported them (its manifest records them as unavailable).

A partition's rows are the rows located in its archive (plus those it reported as in no
archive); rows not located anywhere yet are looked for by every archive not fully read.
"""

from __future__ import annotations

from encord_assets.lazy import pl
from encord_assets.store import DatasetStore

NOT_FOUND = "not_in_any_archive"


class ArchiveIndex:
    """A snapshot of the index of one asset's archives (refreshed by its own writes)."""

    def __init__(self, store: DatasetStore, asset_name: str, keys: tuple[str, ...]):
        self.store = store
        self.dir = store.state_key("archive_index", asset_name)
        self.keys = keys
        self.refresh()

    def _key(self, name: str) -> str:
        return f"{self.dir}/{name}.parquet"

    def refresh(self) -> None:
        stems = [key.rsplit("/", 1)[-1].removesuffix(".parquet") for key in self.store.find(self.dir) if key.endswith(".parquet")]
        id_files = sorted(stem for stem in stems if stem != NOT_FOUND)
        self._complete = {stem for stem in id_files if not stem.endswith(".partial")}
        frames = [
            pl.scan_parquet(path).select("file_id", pl.lit(stem.removesuffix(".partial")).alias("archive"))
            for stem in id_files
            for path in self.store.local_tables([self._key(stem)])
        ]
        located = pl.DataFrame(schema={"file_id": pl.String, "archive": pl.String})
        if frames:
            # every archive's ids; an id seen in two archives belongs to the first
            located = (
                pl.concat(frames)
                .sort("archive", maintain_order=True)
                .unique("file_id", keep="first", maintain_order=True)
                .collect()
            )
        self._located = located
        not_found = self.store.read_parquet(self._key(NOT_FOUND))
        self._not_found = not_found if not_found is not None else pl.DataFrame(schema={"target": pl.String, "archive": pl.String})

    def complete(self, key: str) -> bool:
        return key in self._complete

    def all_complete(self) -> bool:
        return self._complete.issuperset(self.keys)

    def located(self) -> pl.DataFrame:
        """(file_id, archive) for every id seen in an archive."""
        return self._located

    def not_found(self) -> pl.DataFrame:
        return self._not_found

    def record(self, key: str, file_ids: list[str], complete: bool) -> None:
        """Record the ids a pass over `key` read (all of them when `complete`)."""
        ids = pl.DataFrame({"file_id": file_ids}, schema={"file_id": pl.String})
        partial = self._key(f"{key}.partial")
        if complete:
            self.store.write(self._key(key), ids.unique(maintain_order=True).write_parquet)
            self.store.delete(partial)
        elif ids.height:
            before = self.store.read_parquet(partial)
            self.store.write(partial, pl.concat([before if before is not None else ids.clear(), ids]).unique(maintain_order=True).write_parquet)
        self.refresh()

    def record_not_found(self, key: str, targets: list[str]) -> None:
        rows = pl.DataFrame({"target": targets, "archive": [key] * len(targets)}, schema={"target": pl.String, "archive": pl.String})
        self.store.write(self._key(NOT_FOUND), pl.concat([self.not_found(), rows]).unique("target").write_parquet)
        self.refresh()

    def _ours(self, key: str) -> pl.Expr:
        located = self.located()
        not_found = self.not_found()
        return pl.col("file_id").is_in(located.filter(pl.col("archive") == key)["file_id"].implode()) | pl.col(
            "target"
        ).is_in(not_found.filter(pl.col("archive") == key)["target"].implode())

    def unlocated(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Rows whose id no archive read so far holds, and not yet reported as in no archive."""
        return rows.filter(
            ~pl.col("file_id").is_in(self.located()["file_id"].implode())
            & ~pl.col("target").is_in(self.not_found()["target"].implode())
        )

    def rows_to_fetch(self, key: str, rows: pl.DataFrame) -> pl.DataFrame:
        """Rows located in `key`, plus the unlocated ones when `key` may hold them (not fully
        read) or when every archive was read (so this partition reports them as in no archive)."""
        ours = rows.filter(self._ours(key))
        if self.complete(key) and not self.all_complete():
            return ours
        return pl.concat([ours, self.unlocated(rows)])

    def rows_located(self, key: str, rows: pl.DataFrame, touched: pl.Series) -> pl.DataFrame:
        """The partition's manifest rows after a pass: located here, reported here, or given
        an outcome by the pass (`touched` targets)."""
        return rows.filter(self._ours(key) | pl.col("target").is_in(touched.implode()))

    def needs_run(self, key: str, rows: pl.DataFrame) -> bool:
        """Whether a run of `key` has a missing file to look for (or rows to report as in no archive)."""
        settled = set(self.not_found()["target"].to_list())
        wanted = [t for t in self.rows_to_fetch(key, rows)["target"].to_list() if t not in settled]
        try:
            present = self.store.present(wanted)
        except ValueError:  # a target the layout refuses: the run reports it
            return True
        return any(t not in present for t in wanted)
