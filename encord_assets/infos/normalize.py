"""Validate one infos CSV and normalize it, lazily: the real files are gigabytes.

Every row ends either in the normalized table (with its target path and partition key) or
in the rejects table with the column and the reason; a bad row never stops good rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from encord_assets.infos.datasets import (
    DATASETS,
    FILE_ID_PATTERNS,
    NOT_YOUTUBE,
    YOUTUBE_ID_PATTERN,
    canonical_expr,
    lookup,
)
from encord_assets.layout.paths import KNOWN_SAVE_FOLDERS, target_expr, unsafe_component, unsafe_component_reason
from encord_assets.lazy import np, pl
from encord_assets.settings import DEFAULT_MAX_CLIP_SECONDS
from encord_assets.sources.partitions import source_partition_keys
from encord_assets.sources.registry import sources_for

ID_COLUMNS = {
    "video": ("encord_video_id",),
    "audio": ("encord_audio_id",),
    "image": ("encord_image_id",),
    "points": ("encord_points_id", "encord_point_id"),
    "text": ("encord_text_id",),
}
ESHOT_ID_COLUMNS = {"audio": ("eshot_audio_id",), "points": ("eshot_point_id", "eshot_points_id")}
# EShot files name no source dataset: its audio rows are YouTube clips, its points Objaverse.
ESHOT_DATASETS = {"audio": "EShot", "points": "Objaverse"}
REQUIRED_COLUMNS = {
    "video": ("source_dataset", "file_name", "save_folder"),
    "audio": ("source_dataset", "youtube_id", "start_time", "end_time", "file_name", "save_folder"),
    "image": ("source_dataset", "file_id", "file_name", "save_folder"),
    "points": ("source_dataset", "file_id", "file_name", "save_folder"),
    "text": ("caption",),
}
OPTIONAL_COLUMNS = ("youtube_id", "start_time", "end_time", "file_id", "dataset_license")
# stripped of surrounding blanks, and null when nothing is left
STRIPPED_COLUMNS = ("youtube_id", "file_id", "dataset_license")

REJECT_SCHEMA = {
    "infos_file": str,
    "infos_row": int,
    "column": str,
    "value": str,
    "reason": str,
    "kind": str,
}
ROW_COLUMNS = (
    "split",
    "modality",
    "infos_file",
    "infos_row",
    "row_id",
    "source_dataset",
    "dataset_license",
    "source",
    "file_id",
    "youtube_id",
    "start_time",
    "end_time",
    "save_folder",
    "file_name",
    "target",
    "partition_key",
)
TEXT_COLUMNS = ("split", "infos_file", "infos_row", "encord_text_id", "caption")


@dataclass
class NormalizedInfos:
    rows: pl.LazyFrame
    rejects: pl.DataFrame
    # rows per (source, partition_key); for text, one row: the count
    counts: pl.DataFrame
    # the parquet file `rows` reads, when normalized in a work folder: the table itself
    rows_file: Path | None = None


def empty_rows(modality: str) -> pl.LazyFrame:
    schema = TEXT_SCHEMA if modality == "text" else ROW_SCHEMA
    return pl.LazyFrame(schema=schema)


def unread(modality: str, infos_file: str, reason: str) -> NormalizedInfos:
    """A file that cannot be read at all: no rows, one reject."""
    rows = empty_rows(modality)
    counts = rows.select(pl.len()) if modality == "text" else rows.group_by("source", "partition_key").len()
    return NormalizedInfos(rows, file_reject(infos_file, None, reason), counts.collect())


ROW_SCHEMA = {
    "split": str,
    "modality": str,
    "infos_file": str,
    "infos_row": int,
    "row_id": int,
    "source_dataset": str,
    "dataset_license": str,
    "source": str,
    "file_id": str,
    "youtube_id": str,
    "start_time": float,
    "end_time": float,
    "save_folder": str,
    "file_name": str,
    "target": str,
    "partition_key": str,
}
TEXT_SCHEMA = {
    "split": str,
    "infos_file": str,
    "infos_row": int,
    "encord_text_id": int,
    "caption": str,
}


def file_reject(infos_file: str, column: str | None, reason: str) -> pl.DataFrame:
    return pl.DataFrame(
        [{"infos_file": infos_file, "infos_row": None, "column": column, "value": None, "reason": reason, "kind": "rejected"}],
        schema=REJECT_SCHEMA,
    )


def _header(path: Path) -> list[str]:
    return pl.scan_csv(path, infer_schema=False, encoding="utf8-lossy", n_rows=0).collect_schema().names()


def _header_problem(header: list[str], required: list[str]) -> str | None:
    missing = [column for column in required if column not in header]
    if not missing:
        return None
    hint = ""
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        hint = " (the header is one column: is the file comma-separated?)"
    return f"missing column(s) {', '.join(missing)}; header is {header}{hint}"


DUPLICATE_REASON = "duplicate id (an earlier row has the same id)"


def _unsafe(column: str, value: pl.Expr, applies: pl.Expr | None = None) -> tuple[str, pl.Expr, pl.Expr]:
    """The rule that `value` is one safe path component (where `applies`), with its cheaper boolean."""
    if applies is None:
        return column, unsafe_component_reason(value), unsafe_component(value)
    return column, pl.when(applies).then(unsafe_component_reason(value)), applies.fill_null(False) & unsafe_component(value)


def _rules(
    modality: str, id_column: str, known_save_folders: tuple[str, ...], max_clip_seconds: float
) -> list[tuple[str, pl.Expr] | tuple[str, pl.Expr, pl.Expr | None]]:
    """(column, reason-or-null expression) in the order a row is judged; the first reason wins. A
    third element, where given, is true exactly where the reason is not null and cheaper to evaluate:
    every row is judged by these booleans, and only the refused rows get their reasons. It is None
    where a later rule refuses every row this one does: the row is refused without evaluating it
    (and its reason, which comes first, is still the one reported).

    The id's third rule, duplicate ids, needs every id first: `_judge_duplicates` applies it
    after the pass that evaluates these."""
    ident = pl.col("row_id_raw")
    rules: list[tuple[str, pl.Expr] | tuple[str, pl.Expr, pl.Expr | None]] = [
        # an empty id is not an integer either
        (id_column, pl.when(ident.is_null() | (ident.str.strip_chars() == "")).then(pl.lit("empty")), None),
        (id_column, pl.when(pl.col("row_id").is_null()).then(pl.lit("not an integer"))),
    ]
    if modality == "text":
        rules.append(("caption", pl.when(pl.col("caption").is_null()).then(pl.lit("empty"))))
        rules.append(
            ("caption", pl.when(pl.col("caption").str.contains("\ufffd", literal=True)).then(pl.lit("is not valid UTF-8")))
        )
        return rules
    dataset = pl.col("source_dataset")
    known = sorted(name for name, (modalities, _) in DATASETS.items() if modality in modalities)
    unsafe_folder = _unsafe("save_folder", pl.col("save_folder"))
    if not pl.DataFrame({"f": known_save_folders}, schema={"f": pl.String}).select(unsafe_component(pl.col("f")).any()).item():
        # every known folder is safe: an unsafe one is unknown too (or missing, which is_in passes)
        unsafe_folder = (*unsafe_folder[:2], pl.col("save_folder").is_null())
    rules += [
        # an empty dataset is not a known one either
        ("source_dataset", pl.when(pl.col("source_dataset_raw").is_null()).then(pl.lit("empty")), None),
        (
            "source_dataset",
            pl.when(dataset.is_null()).then(pl.lit(f"unknown source dataset; known for {modality}: {', '.join(known)}")),
        ),
        unsafe_folder,
        (
            "save_folder",
            pl.when(~pl.col("save_folder").is_in(list(known_save_folders))).then(
                pl.lit(f"unknown save_folder; known: {', '.join(known_save_folders)}")
            ),
        ),
        _unsafe("file_name", pl.col("file_name")),
    ]
    if modality in ("video", "audio"):
        youtube = ~dataset.is_in(sorted(NOT_YOUTUBE))
        start, end = pl.col("start_time"), pl.col("end_time")
        rules += [
            (
                "youtube_id",
                pl.when(youtube & pl.col("youtube_id").is_null()).then(
                    pl.lit("empty: YouTube is the only upstream known for this source")
                ),
            ),
            (
                "youtube_id",
                pl.when(youtube & ~pl.col("youtube_id").str.contains(YOUTUBE_ID_PATTERN)).then(
                    pl.lit("not an 11-character YouTube id")
                ),
            ),
            ("start_time", pl.when(youtube & start.is_null()).then(pl.lit("not a number"))),
            ("end_time", pl.when(youtube & end.is_null()).then(pl.lit("not a number"))),
            # nan compares false and inf passes every comparison: refuse both before comparing
            ("start_time", pl.when(youtube & ~start.is_finite()).then(pl.lit("not a finite number"))),
            ("end_time", pl.when(youtube & ~end.is_finite()).then(pl.lit("not a finite number"))),
            ("start_time", pl.when(youtube & (start < 0)).then(pl.lit("negative"))),
            ("end_time", pl.when(youtube & (end <= start)).then(pl.lit("not greater than start_time"))),
            (
                "end_time",
                pl.when(youtube & (end - start > max_clip_seconds)).then(
                    pl.lit(f"clip longer than {max_clip_seconds:g} s (ENCORD_MAX_CLIP_SECONDS)")
                ),
            ),
            _unsafe("file_id", pl.col("file_id"), applies=~youtube),
        ]
    else:
        rules.append(("file_id", pl.when(pl.col("file_id").is_null()).then(pl.lit("empty"))))
        # one regex per row, its dataset's (none for a dataset that fixes no format)
        pattern = lookup(dataset, {name: pattern for name, (pattern, _) in FILE_ID_PATTERNS.items()})
        mismatch = ~pl.col("file_id").str.contains(pattern)
        descriptions = {name: f"not {description}" for name, (_, description) in FILE_ID_PATTERNS.items()}
        rules.append(("file_id", pl.when(mismatch).then(lookup(dataset, descriptions)), mismatch.fill_null(False)))
        if modality == "points":
            rules.append(_unsafe("file_id", pl.col("file_id")))
    return rules


def _raw_value(column: str, id_column: str) -> pl.Expr:
    internal = {id_column: "row_id_raw", "source_dataset": "source_dataset_raw", "start_time": "start_time_raw", "end_time": "end_time_raw"}
    return pl.col(internal.get(column, column)).cast(pl.String)


def normalize(
    path: Path,
    infos_file: str,
    split: str,
    modality: str,
    known_save_folders: tuple[str, ...] = KNOWN_SAVE_FOLDERS,
    audio_dir: str = "video",
    max_clip_seconds: float = DEFAULT_MAX_CLIP_SECONDS,
    work_dir: Path | None = None,
) -> NormalizedInfos:
    """Validate the CSV at `path` (named `infos_file` in reports) and normalize it lazily.

    The CSV is parsed once; its valid rows are written as the finished table `rows_file` in
    `work_dir` (which must outlive the returned rows), or kept in memory when there is none (small
    files: tests, the demo's plans)."""
    if path.stat().st_size == 0:
        return unread(modality, infos_file, "empty file (no header)")
    header = _header(path)
    eshot = split == "eshot"
    id_candidates = (ESHOT_ID_COLUMNS if eshot else ID_COLUMNS)[modality]
    id_column = next((c for c in id_candidates if c in header), id_candidates[0])
    required = [id_column] + [c for c in REQUIRED_COLUMNS[modality] if not (eshot and c == "source_dataset")]
    if problem := _header_problem(header, required):
        return unread(modality, infos_file, problem)
    pass_args = (path, header, infos_file, split, modality, id_column, known_save_folders, audio_dir, max_clip_seconds, work_dir)
    try:
        # strict decoding is the cheaper parse; almost every file is valid UTF-8
        return _normalize_pass(*pass_args, encoding="utf8")
    except pl.exceptions.ComputeError as error:
        if "invalid utf-8" not in str(error):
            raise
    # read again with the bad bytes as U+FFFD, which the rules refuse row by row
    return _normalize_pass(*pass_args, encoding="utf8-lossy")


def _scan(path: Path, encoding: str) -> pl.LazyFrame:
    return pl.scan_csv(path, infer_schema=False, encoding=encoding, truncate_ragged_lines=True).with_row_index("infos_row", offset=1)


class _Batches:
    """What the one pass keeps of each batch it judges, besides the valid rows it lets through: the
    refused rows, the valid rows per partition, and whether the batch's ids rise (and over which
    range). Ids rising within every batch, in ranges that do not overlap, repeat nowhere: the
    search for duplicate ids after the pass is needed only otherwise.

    Batches may come from several threads: each one only appends, or turns `ids_rise` off."""

    def __init__(self, refused_columns: list[str], partition_keys: pl.DataFrame | None):
        # rows are counted by their position in `partition_keys` (column `_key`), cheaper than by two
        # strings; text rows have no partition and are counted as one
        self.refused_columns, self.partition_keys = refused_columns, partition_keys
        self.refused: list[pl.DataFrame] = []
        self.counts: list[np.ndarray] = []
        self.id_ranges: list[tuple[int, int]] = []
        self.ids_rise = True

    def __call__(self, batch: pl.Series) -> pl.Series:
        frame = batch.struct.unnest()
        refused = frame["_refused"]
        any_refused = refused.any()
        if any_refused:
            # copied out through arrow: a filtered string column still holds its whole batch's buffers
            kept = frame.filter(refused).select(self.refused_columns).to_arrow(compat_level=pl.CompatLevel.oldest())
            self.refused.append(pl.from_arrow(kept))
        if self.partition_keys is None:
            self.counts.append(np.array([len(frame) - refused.sum()]))
        else:
            keys = frame["_key"].filter(~refused) if any_refused else frame["_key"]
            self.counts.append(np.bincount(keys.to_numpy(), minlength=self.partition_keys.height))
        ids = frame["row_id"]
        if self.ids_rise and len(ids) > ids.null_count():
            rising = ids.drop_nulls().to_numpy()
            if not (rising[1:] > rising[:-1]).all():
                self.ids_rise = False
            self.id_ranges.append((rising[0], rising[-1]))
        return ~refused

    def ids_may_repeat(self) -> bool:
        ranges = sorted(self.id_ranges)
        return not self.ids_rise or any(high >= low for (_, high), (low, _) in zip(ranges, ranges[1:]))

    def refused_rows(self, schema: pl.Schema) -> pl.DataFrame:
        empty = pl.DataFrame(schema={c: schema[c] for c in self.refused_columns})
        return pl.concat([empty, *self.refused]).sort("infos_row")

    def counts_by_partition(self) -> pl.DataFrame:
        """Rows per (source, partition_key) with rows; for text, one row: the count."""
        if self.partition_keys is None:
            return pl.DataFrame({"len": [int(sum(count[0] for count in self.counts))]}, schema={"len": pl.UInt32})
        total = np.sum(self.counts, axis=0) if self.counts else np.zeros(self.partition_keys.height, dtype=np.int64)
        return self.partition_keys.with_columns(pl.Series("len", total).cast(pl.UInt32)).filter(pl.col("len") > 0)


def _normalize_pass(
    path: Path,
    header: list[str],
    infos_file: str,
    split: str,
    modality: str,
    id_column: str,
    known_save_folders: tuple[str, ...],
    audio_dir: str,
    max_clip_seconds: float,
    work_dir: Path | None,
    encoding: str,
) -> NormalizedInfos:
    eshot = split == "eshot"
    lf = (
        _scan(path, encoding)
        .with_columns(pl.col("infos_row").cast(pl.Int64))
        .rename({id_column: "row_id_raw"})
        .with_columns(pl.col("row_id_raw").str.strip_chars().cast(pl.Int64, strict=False).alias("row_id"))
    )
    if modality != "text":
        lf = lf.with_columns(
            [pl.lit(None, dtype=pl.String).alias(c) for c in OPTIONAL_COLUMNS if c not in header]
            + ([pl.lit(ESHOT_DATASETS[modality]).alias("source_dataset")] if eshot else [])
        ).with_columns(
            pl.col("source_dataset").str.strip_chars().str.to_lowercase().alias("_dataset_key")
        ).with_columns(
            pl.col("source_dataset").alias("source_dataset_raw"),
            canonical_expr(pl.col("_dataset_key"), modality).alias("source_dataset"),
            pl.col("start_time").alias("start_time_raw"),
            pl.col("end_time").alias("end_time_raw"),
            pl.col("start_time").str.strip_chars().cast(pl.Float64, strict=False),
            pl.col("end_time").str.strip_chars().cast(pl.Float64, strict=False),
            *[pl.col(c).str.strip_chars() for c in STRIPPED_COLUMNS],
        ).with_columns(
            # when/then, not replace(): polars cannot stream replace over a whole column (and
            # comparing the stripped column, not stripping twice, halves this step)
            pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in STRIPPED_COLUMNS
        )

    rules = _rules(modality, id_column, known_save_folders, max_clip_seconds)
    # every row judged by booleans; reasons are found for the refused rows only, after the pass
    booleans = [rule[2] if len(rule) == 3 else rule[1].is_not_null() for rule in rules]
    refused_by_rule = pl.any_horizontal([b for b in booleans if b is not None])
    inputs = lf.collect_schema().names()
    judged = lf.with_columns(refused_by_rule.alias("_refused"))
    judged = judged.with_columns(pl.lit(v).alias(c) for c, v in {"split": split, "infos_file": infos_file, "modality": modality}.items())
    if modality == "text":
        judged = judged.with_columns(pl.lit("text").alias("source"))
        row_columns = [*TEXT_COLUMNS[:3], pl.col("row_id").alias("encord_text_id"), "caption"]
        count_by: list[str] = []
        partition_keys = None
    else:
        specs = sources_for(modality)
        partition_keys, position = source_partition_keys(specs, split)
        judged = (
            judged.with_columns(
                lookup(pl.col("source_dataset"), {s.dataset: s.name for s in specs}).cast(pl.String).alias("source"),
            )
            .with_columns(target_expr(audio_dir).alias("target"))
            .with_columns(position.alias("_key"))
            .with_columns(pl.lit(partition_keys["partition_key"]).gather(pl.col("_key")).alias("partition_key"))
        )
        row_columns, count_by = list(ROW_COLUMNS), ["source", "partition_key"]
    # The one pass over the CSV, with one output (the valid rows, written as the final table or kept
    # in memory for small files): the refused rows and the counts are taken from each batch on its way.
    refused = pl.col("_refused") | pl.col("source").is_null()
    rejected_columns = list(dict.fromkeys([*inputs, "source"]))
    names = [c if isinstance(c, str) else c.meta.output_name() for c in row_columns]
    key = [] if partition_keys is None else ["_key"]
    judged = judged.select(*row_columns, *(c for c in rejected_columns if c not in names), *key, refused.alias("_refused"))
    batches = _Batches(rejected_columns, partition_keys)
    valid = judged.filter(pl.struct(pl.all()).map_batches(batches, return_dtype=pl.Boolean, is_elementwise=True)).select(names)
    rows_file = Path(work_dir) / "rows.parquet" if work_dir is not None else None
    if rows_file is None:
        rows = valid.collect(engine="streaming").lazy()
    else:
        # zstd's fastest level: this table is read a few times, written once per infos run
        valid.sink_parquet(rows_file, compression="zstd", compression_level=1, statistics=False)
        rows = pl.scan_parquet(rows_file)
    rejected = _reasons(batches.refused_rows(judged.collect_schema()), rules, id_column, modality)
    counts = batches.counts_by_partition()
    if batches.ids_may_repeat():
        judged_rows = rows
        rows, rejected = _judge_duplicates(path, encoding, rows, rejected, id_column, rows_file)
        if rows is not judged_rows:  # duplicates left the table: count again
            counts = (rows.group_by(count_by).len() if count_by else rows.select(pl.len())).collect(engine="streaming")
    return NormalizedInfos(rows, _rejects(rejected, infos_file, modality), counts, rows_file)


def _reasons(rejected: pl.DataFrame, rules: list, id_column: str, modality: str) -> pl.DataFrame:
    """The refused rows with the first rule's reason, its column and the value it refused."""
    verdicts = [pl.col(f"_rule{i}") for i in range(len(rules))]
    columns = [rule[0] for rule in rules]
    dataset = [] if modality == "text" else ["source_dataset"]
    return (
        rejected.with_columns(rule[1].alias(f"_rule{i}") for i, rule in enumerate(rules))
        .with_columns(
            pl.coalesce(verdicts).alias("_reason"),
            pl.coalesce([pl.when(v.is_not_null()).then(pl.lit(name)) for v, name in zip(verdicts, columns)]).alias("_column"),
            pl.coalesce([pl.when(v.is_not_null()).then(_raw_value(name, id_column)) for v, name in zip(verdicts, columns)]).alias("_value"),
        )
        .select("infos_row", "row_id", "row_id_raw", *dataset, "source", "_reason", "_column", "_value")
    )


def _judge_duplicates(
    path: Path, encoding: str, rows: pl.LazyFrame, rejected: pl.DataFrame, id_column: str, rows_file: Path | None
) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """A row whose id an earlier row has is rejected as a duplicate. The rules an id can fail before
    (empty, not an integer) leave no id to repeat, so the duplicate reason outranks every other.

    Searched after the pass, when it could not rule them out (ids that do not rise batch by batch),
    from the ids of the valid and the refused rows in row order. Only when
    some are duplicates are the rows rewritten without them (and their raw ids read again)."""
    valid_id = pl.col("encord_text_id" if "encord_text_id" in rows.collect_schema() else "row_id")
    ids = rows.select("infos_row", valid_id.alias("row_id")).merge_sorted(rejected.lazy().select("infos_row", "row_id"), key="infos_row")
    duplicate_rows = (
        ids.filter(pl.col("row_id").is_not_null() & ~pl.col("row_id").is_first_distinct())
        .collect(engine="streaming")["infos_row"]
    )
    if duplicate_rows.is_empty():
        return rows, rejected
    duplicate = pl.col("infos_row").is_in(duplicate_rows.implode())
    # the raw id of a valid row is not kept: read again, for these rows only
    raw_ids = (
        _scan(path, encoding)
        .select(pl.col("infos_row").cast(pl.Int64), pl.col(id_column).alias("row_id_raw"))
        .filter(duplicate)
    )
    duplicated_valid = (
        rows.filter(duplicate)
        .select("infos_row", valid_id.alias("row_id"), *(c for c in ("source_dataset", "source") if c in rows.collect_schema()))
        .join(raw_ids, on="infos_row", how="left")
    )
    rows = rows.filter(~duplicate)
    if rows_file is None:
        rows_frame, duplicated_valid = pl.collect_all([rows, duplicated_valid])
        rows = rows_frame.lazy()
    else:
        kept_file = rows_file.with_name("rows.kept.parquet")
        _, duplicated_valid = pl.collect_all([rows.sink_parquet(kept_file, statistics=False, lazy=True), duplicated_valid])
        kept_file.replace(rows_file)
        rows = pl.scan_parquet(rows_file)
    rejected = pl.concat([rejected, duplicated_valid], how="diagonal_relaxed").sort("infos_row").with_columns(
        pl.when(duplicate).then(pl.lit(DUPLICATE_REASON)).otherwise(pl.col("_reason")).alias("_reason"),
        pl.when(duplicate).then(pl.lit(id_column)).otherwise(pl.col("_column")).alias("_column"),
        pl.when(duplicate).then(pl.col("row_id_raw")).otherwise(pl.col("_value")).alias("_value"),
    )
    return rows, rejected


def _rejects(rejected: pl.LazyFrame, infos_file: str, modality: str) -> pl.LazyFrame:
    unrouted = pl.col("_reason").is_null() & pl.col("source").is_null()
    dataset_name = pl.lit(None, dtype=pl.String) if modality == "text" else pl.col("source_dataset")
    return rejected.select(
        pl.lit(infos_file).alias("infos_file"),
        "infos_row",
        pl.when(unrouted).then(pl.lit("source_dataset")).otherwise(pl.col("_column")).alias("column"),
        pl.when(unrouted).then(dataset_name).otherwise(pl.col("_value")).alias("value"),
        pl.when(unrouted)
        .then(pl.lit("routed to no source: no fetcher is implemented for this source dataset yet"))
        .otherwise(pl.col("_reason"))
        .alias("reason"),
        pl.when(unrouted).then(pl.lit("unrouted")).otherwise(pl.lit("rejected")).alias("kind"),
    ).cast(REJECT_SCHEMA)
