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
from encord_assets.layout.paths import KNOWN_SAVE_FOLDERS, target_expr, unsafe_component_reason
from encord_assets.lazy import pl
from encord_assets.settings import DEFAULT_MAX_CLIP_SECONDS
from encord_assets.sources.partitions import source_partition_key_expr
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


def empty_rows(modality: str) -> pl.LazyFrame:
    schema = TEXT_SCHEMA if modality == "text" else ROW_SCHEMA
    return pl.LazyFrame(schema=schema)


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


def _rules(
    modality: str,
    id_column: str,
    known_save_folders: tuple[str, ...],
    duplicate_rows: pl.Series,
    max_clip_seconds: float,
) -> list[tuple[str, pl.Expr]]:
    """(column, reason-or-null expression) in the order a row is judged; the first reason wins."""
    ident = pl.col("row_id_raw")
    rules: list[tuple[str, pl.Expr]] = [
        (id_column, pl.when(ident.is_null() | (ident.str.strip_chars() == "")).then(pl.lit("empty"))),
        (id_column, pl.when(pl.col("row_id").is_null()).then(pl.lit("not an integer"))),
        (
            id_column,
            pl.when(pl.col("infos_row").is_in(duplicate_rows.implode())).then(
                pl.lit("duplicate id (an earlier row has the same id)")
            ),
        ),
    ]
    if modality == "text":
        rules.append(("caption", pl.when(pl.col("caption").is_null()).then(pl.lit("empty"))))
        rules.append(
            ("caption", pl.when(pl.col("caption").str.contains("\ufffd", literal=True)).then(pl.lit("is not valid UTF-8")))
        )
        return rules
    dataset = pl.col("source_dataset")
    known = sorted(name for name, (modalities, _) in DATASETS.items() if modality in modalities)
    rules += [
        ("source_dataset", pl.when(pl.col("source_dataset_raw").is_null()).then(pl.lit("empty"))),
        (
            "source_dataset",
            pl.when(dataset.is_null()).then(pl.lit(f"unknown source dataset; known for {modality}: {', '.join(known)}")),
        ),
        ("save_folder", unsafe_component_reason(pl.col("save_folder"))),
        (
            "save_folder",
            pl.when(~pl.col("save_folder").is_in(list(known_save_folders))).then(
                pl.lit(f"unknown save_folder; known: {', '.join(known_save_folders)}")
            ),
        ),
        ("file_name", unsafe_component_reason(pl.col("file_name"))),
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
            ("file_id", pl.when(~youtube).then(unsafe_component_reason(pl.col("file_id")))),
        ]
    else:
        rules.append(("file_id", pl.when(pl.col("file_id").is_null()).then(pl.lit("empty"))))
        for name, (pattern, description) in FILE_ID_PATTERNS.items():
            rules.append(
                (
                    "file_id",
                    pl.when((dataset == name) & ~pl.col("file_id").str.contains(pattern)).then(
                        pl.lit(f"not {description}")
                    ),
                )
            )
        if modality == "points":
            rules.append(("file_id", unsafe_component_reason(pl.col("file_id"))))
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
) -> NormalizedInfos:
    """Validate the CSV at `path` (named `infos_file` in reports) and normalize it lazily."""
    if path.stat().st_size == 0:
        return NormalizedInfos(empty_rows(modality), file_reject(infos_file, None, "empty file (no header)"))
    header = _header(path)
    eshot = split == "eshot"
    id_candidates = (ESHOT_ID_COLUMNS if eshot else ID_COLUMNS)[modality]
    id_column = next((c for c in id_candidates if c in header), id_candidates[0])
    required = [id_column] + [c for c in REQUIRED_COLUMNS[modality] if not (eshot and c == "source_dataset")]
    if problem := _header_problem(header, required):
        return NormalizedInfos(empty_rows(modality), file_reject(infos_file, None, problem))

    lf = (
        pl.scan_csv(path, infer_schema=False, encoding="utf8-lossy", truncate_ragged_lines=True)
        .with_row_index("infos_row", offset=1)
        .with_columns(pl.col("infos_row").cast(pl.Int64))
        .rename({id_column: "row_id_raw"})
        .with_columns(pl.col("row_id_raw").str.strip_chars().cast(pl.Int64, strict=False).alias("row_id"))
    )
    if modality != "text":
        lf = lf.with_columns(
            [pl.lit(None, dtype=pl.String).alias(c) for c in OPTIONAL_COLUMNS if c not in header]
            + ([pl.lit(ESHOT_DATASETS[modality]).alias("source_dataset")] if eshot else [])
        ).with_columns(
            pl.col("source_dataset").alias("source_dataset_raw"),
            canonical_expr(pl.col("source_dataset"), modality).alias("source_dataset"),
            pl.col("start_time").alias("start_time_raw"),
            pl.col("end_time").alias("end_time_raw"),
            pl.col("start_time").str.strip_chars().cast(pl.Float64, strict=False),
            pl.col("end_time").str.strip_chars().cast(pl.Float64, strict=False),
            # when/then, not replace(): polars cannot stream replace over a whole column
            *[
                pl.when(pl.col(c).str.strip_chars() != "").then(pl.col(c).str.strip_chars()).alias(c)
                for c in ("youtube_id", "file_id", "dataset_license")
            ],
        )

    # Found in a pass over two columns only: a whole-frame window would hold the file in memory.
    duplicate_rows = (
        lf.select("infos_row", "row_id")
        .filter(pl.col("row_id").is_not_null() & ~pl.col("row_id").is_first_distinct())
        .collect(engine="streaming")["infos_row"]
    )
    rules = _rules(modality, id_column, known_save_folders, duplicate_rows, max_clip_seconds)
    reason = pl.coalesce([expr for _, expr in rules])
    column = pl.coalesce([pl.when(expr.is_not_null()).then(pl.lit(name)) for name, expr in rules])
    value = pl.coalesce([pl.when(expr.is_not_null()).then(_raw_value(name, id_column)) for name, expr in rules])
    judged = lf.with_columns(reason.alias("_reason"), column.alias("_column"), value.alias("_value"))
    if modality == "text":
        judged = judged.with_columns(pl.lit("text").alias("source"))
        dataset_name = pl.lit(None, dtype=pl.String)
    else:
        dataset_name = pl.col("source_dataset")
        specs = sources_for(modality)
        judged = judged.with_columns(
            lookup(pl.col("source_dataset"), {s.dataset: s.name for s in specs}).cast(pl.String).alias("source")
        )
    unrouted = pl.col("_reason").is_null() & pl.col("source").is_null()
    # One pass for rejected and unrouted rows: two queries on one scan would be cached whole in memory.
    rejects = (
        judged.filter(pl.col("_reason").is_not_null() | pl.col("source").is_null())
        .select(
            pl.lit(infos_file).alias("infos_file"),
            "infos_row",
            pl.when(unrouted).then(pl.lit("source_dataset")).otherwise(pl.col("_column")).alias("column"),
            pl.when(unrouted).then(dataset_name).otherwise(pl.col("_value")).alias("value"),
            pl.when(unrouted)
            .then(pl.lit("routed to no source: no fetcher is implemented for this source dataset yet"))
            .otherwise(pl.col("_reason"))
            .alias("reason"),
            pl.when(unrouted).then(pl.lit("unrouted")).otherwise(pl.lit("rejected")).alias("kind"),
        )
        .collect(engine="streaming")
        .cast(REJECT_SCHEMA)
    )
    valid = judged.filter(pl.col("_reason").is_null() & pl.col("source").is_not_null()).with_columns(
        pl.lit(split).alias("split"), pl.lit(infos_file).alias("infos_file")
    )
    if modality == "text":
        return NormalizedInfos(valid.select(*TEXT_COLUMNS[:3], pl.col("row_id").alias("encord_text_id"), "caption"), rejects)
    rows = (
        valid.with_columns(pl.lit(modality).alias("modality"))
        .with_columns(target_expr(audio_dir).alias("target"))
        .with_columns(
            source_partition_key_expr(specs).alias("partition_key")
        )
        .select(ROW_COLUMNS)
    )
    return NormalizedInfos(rows, rejects)
