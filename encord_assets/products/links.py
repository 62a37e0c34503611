"""E-MM1's files that tie items together, joined with what is placed: groups, triplets, EShot categories.

- `e-mm1_100m/nn_<k>/data_groups.csv`: one group (a caption and a video, audio clip, image and point
  cloud) per row; `nn_index` is the neighbour rank.
- `e-mm1_1m/triplets.csv`: a caption, a paired item and an annotated item, with a human annotation whose
  meaning `annotation_mapping.csv` gives (1 Good Match, 2 Partial Match, 3 Bad Match).
- `eshot/category_to_audio_ids.json`, `category_to_point_ids.json`: category -> EShot ids.

Every member gets the path (or object URL) of its file and whether the file is there. Paths follow the
download guide's layout, where E-MM1 audio clips live in `video/` (E-MM1's README writes `audio/`).
Members whose id is in no infos file are counted as unknown, never fatal. Everything is lazy: the real
data_groups files are ~265 MB each.
"""

from __future__ import annotations

import json
from pathlib import Path

from encord_assets.infos.files import SPLIT_FOLDERS
from encord_assets.lazy import pl

MEMBERS = ("video", "audio", "image", "points")
# How triplets.csv may spell a modality.
MODALITY_NAMES = {
    "video": "video", "videos": "video", "audio": "audio", "image": "image", "images": "image",
    "points": "points", "point": "points", "point_cloud": "points", "pointcloud": "points", "3d": "points",
}
ESHOT_CATEGORY_FILES = {"audio": "eshot/category_to_audio_ids.json", "points": "eshot/category_to_point_ids.json"}
# Older commits of triplets.csv named the modality columns modality_1 / modality_2.
TRIPLET_RENAMES = {"modality_1": "paired_modality", "modality_2": "annotated_modality"}

ITEM_SCHEMA = {
    "split": str, "modality": str, "row_id": int, "target": str, "present": bool,
}


def data_group_files(infos_dir: Path) -> list[tuple[str, Path]]:
    """(nn_k, path) of every data_groups.csv of the 100M split, in neighbour order."""
    for folder in SPLIT_FOLDERS["e-mm1_100m"]:
        found = sorted(Path(infos_dir, folder).glob("nn_*/data_groups.csv"), key=lambda p: int(p.parent.name[3:] or 0))
        if found:
            return [(path.parent.name, path) for path in found]
    return []


def split_file(infos_dir: Path, split: str, name: str) -> Path | None:
    return next((p for folder in SPLIT_FOLDERS[split] if (p := Path(infos_dir, folder, name)).is_file()), None)


def _members(items: pl.LazyFrame, split: str, modality: str, prefix: str) -> pl.LazyFrame:
    """One modality's items of a split, columns renamed for joining as member `prefix`."""
    return items.filter((pl.col("split") == split) & (pl.col("modality") == modality)).select(
        pl.col("row_id").alias(f"{prefix}_id"),
        pl.col("target").alias(f"{prefix}_target"),
        pl.col("present").alias(f"{prefix}_present"),
    )


def _path(base_uri: str, target: str) -> pl.Expr:
    return pl.when(pl.col(target).is_not_null()).then(pl.lit(base_uri.rstrip("/") + "/") + pl.col(target))


def _captions(captions: pl.LazyFrame, split: str) -> pl.LazyFrame:
    return captions.filter(pl.col("split") == split).select("encord_text_id", "caption").unique("encord_text_id", keep="any")


def groups(infos_dir: Path, items: pl.LazyFrame, captions: pl.LazyFrame, base_uri: str) -> pl.LazyFrame | None:
    """Every group of every nn_k file with each member's id, path, presence; None without data_groups files."""
    files = data_group_files(infos_dir)
    if not files:
        return None
    id_columns = {"encord_text_id": pl.Int64, "nn_index": pl.Int64, **{f"encord_{m}_id": pl.Int64 for m in MEMBERS}}
    frame = pl.concat(
        [pl.scan_csv(path, schema_overrides=id_columns).with_columns(pl.lit(nn).alias("nn")) for nn, path in files],
        how="diagonal_relaxed",
    ).join(_captions(captions, "e-mm1_100m"), on="encord_text_id", how="left")
    for m in MEMBERS:
        frame = frame.join(_members(items, "e-mm1_100m", m, m), left_on=f"encord_{m}_id", right_on=f"{m}_id", how="left")
    return frame.select(
        "nn", "nn_index", "encord_text_id", "caption",
        *[c for m in MEMBERS for c in (
            f"encord_{m}_id",
            _path(base_uri, f"{m}_target").alias(f"{m}_path"),
            pl.col(f"{m}_present").fill_null(False),
            (pl.col(f"encord_{m}_id").is_not_null() & pl.col(f"{m}_target").is_null()).alias(f"{m}_unknown"),
        )],
    ).with_columns(
        pl.all_horizontal([pl.col(f"encord_{m}_id").is_null() | pl.col(f"{m}_present") for m in MEMBERS]).alias("complete")
    )


def group_coverage(frame: pl.LazyFrame) -> dict[str, int]:
    stats = frame.select(
        pl.len().alias("groups"),
        pl.col("complete").sum().alias("complete_groups"),
        *[(pl.col(f"encord_{m}_id").is_not_null() & ~pl.col(f"{m}_present")).sum().alias(f"groups_missing_{m}") for m in MEMBERS],
        *[pl.col(f"{m}_unknown").sum().alias(f"unknown_{m}_ids") for m in MEMBERS],
        pl.col("caption").is_null().sum().alias("groups_without_caption"),
    ).collect(engine="streaming")
    return {k: int(v) for k, v in stats.row(0, named=True).items()}


def annotation_mapping(path: Path | None) -> pl.DataFrame:
    """annotation code -> label, whatever the header calls them: the code is the integer column."""
    if path is None:
        return pl.DataFrame(schema={"annotation": pl.Int64, "annotation_label": pl.String})
    table = pl.read_csv(path, infer_schema=False)
    codes = [c for c in table.columns if table[c].str.strip_chars().cast(pl.Int64, strict=False).is_not_null().all()]
    if not codes or len(table.columns) < 2:
        raise ValueError(f"{path}: expected a column of integer codes and a column of labels, got {table.columns}")
    label = next(c for c in table.columns if c != codes[0])
    return table.select(
        pl.col(codes[0]).str.strip_chars().cast(pl.Int64).alias("annotation"), pl.col(label).str.strip_chars().alias("annotation_label")
    )


def triplets(infos_dir: Path, items: pl.LazyFrame, captions: pl.LazyFrame, base_uri: str) -> pl.LazyFrame | None:
    """Every triplet with its caption, annotation label, and the paired and annotated items' paths and presence."""
    path = split_file(infos_dir, "e-mm1_1m", "triplets.csv")
    if path is None:
        return None
    header = pl.scan_csv(path, infer_schema=False).collect_schema().names()
    renames = {old: new for old, new in TRIPLET_RENAMES.items() if old in header and new not in header}
    frame = (
        pl.scan_csv(path, infer_schema=False)
        .rename(renames)
        .with_columns(
            *[pl.col(c).str.strip_chars().cast(pl.Int64, strict=False) for c in ("encord_text_id", "encord_paired_id", "encord_annotated_id", "annotation")],
            *[pl.col(c).str.strip_chars().str.to_lowercase().replace_strict(MODALITY_NAMES, default=None).alias(c)
              for c in ("paired_modality", "annotated_modality")],
        )
        .join(annotation_mapping(split_file(infos_dir, "e-mm1_1m", "annotation_mapping.csv")).lazy(), on="annotation", how="left")
        .join(_captions(captions, "e-mm1_1m"), on="encord_text_id", how="left")
    )
    one_m = items.filter(pl.col("split") == "e-mm1_1m")
    for role in ("paired", "annotated"):
        frame = frame.join(
            one_m.select(
                pl.col("modality").alias(f"{role}_modality"), pl.col("row_id").alias(f"encord_{role}_id"),
                pl.col("target").alias(f"{role}_target"), pl.col("present").alias(f"{role}_present"),
            ),
            on=[f"{role}_modality", f"encord_{role}_id"],
            how="left",
        )
    return frame.select(
        "encord_text_id", "caption", "paired_modality", "encord_paired_id", "annotated_modality", "encord_annotated_id",
        "annotation", "annotation_label",
        *[c for role in ("paired", "annotated") for c in (
            _path(base_uri, f"{role}_target").alias(f"{role}_path"),
            pl.col(f"{role}_present").fill_null(False),
            pl.col(f"{role}_target").is_null().alias(f"{role}_unknown"),
        )],
    )


def triplet_coverage(frame: pl.LazyFrame) -> dict[str, int]:
    stats = frame.select(
        pl.len().alias("triplets"),
        (pl.col("paired_present") & pl.col("annotated_present")).sum().alias("complete_triplets"),
        (~pl.col("paired_present")).sum().alias("triplets_missing_paired"),
        (~pl.col("annotated_present")).sum().alias("triplets_missing_annotated"),
        pl.col("paired_unknown").sum().alias("unknown_paired_ids"),
        pl.col("annotated_unknown").sum().alias("unknown_annotated_ids"),
        pl.col("annotation_label").is_null().sum().alias("triplets_without_annotation_label"),
    ).collect(engine="streaming")
    return {k: int(v) for k, v in stats.row(0, named=True).items()}


def eshot_categories(infos_dir: Path, items: pl.LazyFrame, base_uri: str) -> pl.LazyFrame | None:
    """(category, modality, eshot_id) with each item's path and presence; None without the JSON files."""
    frames = []
    for modality, name in ESHOT_CATEGORY_FILES.items():
        path = Path(infos_dir, name)
        if not path.is_file():
            continue
        # 112 categories: small files, read whole
        mapping = json.loads(path.read_text())
        frames.append(
            pl.DataFrame({"category": list(mapping), "eshot_id": list(mapping.values())}, schema={"category": pl.String, "eshot_id": pl.List(pl.Int64)})
            .explode("eshot_id")
            .with_columns(pl.lit(modality).alias("modality"))
        )
    if not frames:
        return None
    eshot = items.filter(pl.col("split") == "eshot").select(
        "modality", pl.col("row_id").alias("eshot_id"), "target", "present"
    )
    return (
        pl.concat(frames).lazy()
        .join(eshot, on=["modality", "eshot_id"], how="left")
        .select(
            "category", "modality", "eshot_id", _path(base_uri, "target").alias("path"),
            pl.col("present").fill_null(False), pl.col("target").is_null().alias("unknown"),
        )
    )


def category_coverage(frame: pl.LazyFrame) -> dict[str, int]:
    stats = frame.select(
        pl.col("category").n_unique().alias("categories"),
        pl.len().alias("category_items"),
        pl.col("present").sum().alias("category_items_present"),
        (~pl.col("present") & ~pl.col("unknown")).sum().alias("category_items_missing"),
        pl.col("unknown").sum().alias("unknown_eshot_ids"),
    ).collect()
    return {k: int(v) for k, v in stats.row(0, named=True).items()}
