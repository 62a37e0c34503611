"""The Open Images assets: the class list, the per-split annotation tables, and one source asset
partitioned by (class, split) that places images, masks, the class's annotation CSV and its id list.

Partitions: the class dimension is dynamic (`openimages_class`, one key `<display name>_<mid>` per
chosen class), added by `openimages_classes` once the configured names are resolved against the
upstream class list; the split dimension is static. Resolving names needs that list, which is not
known when definitions load, and a dynamic dimension lets a user add classes without redeploying
(at most 600 classes x 3 splits, far from the dynamic-partition limits of SQLite storage).

Layout, under ROOT/<folder>/ (default OID_V6): `csv/class-descriptions-boxable.csv`,
`csv/<split>/<mid>_annotations.csv`, `downloader_IDs_for_<mid>_<split>.txt`,
`images/<split>/<display name>_<mid>/<ImageID>.jpg`, `masks/<split>/<MaskPath>`; splits keep
upstream's names (`train`, `validation`, `test`), as the bucket keys and the official downloader do.
"""

import warnings

import dagster as dg

from encord_assets.layout.paths import layout_key
from encord_assets.lazy import pl, plh, Image
from encord_assets.ledger import FetchLedger
from encord_assets.sources.openimages import (
    CLASS_DESCRIPTIONS,
    SEGMENTATION_CLASSES,
    SPLITS,
    OpenImages,
    UnknownClass,
    annotation_file,
    class_folder,
    mask_zip,
    mid_stem,
    read_class_descriptions,
    resolve_classes,
)
from encord_assets.sources.registry import SourceSpec
from encord_assets.sources.work import PartitionWork
from encord_assets.store import DatasetStore

CLASS_PARTITIONS = dg.DynamicPartitionsDefinition(name="openimages_class")
SPLIT_PARTITIONS = dg.StaticPartitionsDefinition(list(SPLITS))
SOURCE_DATASET = "Open Images V6"

# The per-split annotation table (and, for one class, its annotation CSV): one row per box, mask or
# image-level label of a chosen class; coordinates are fractions of the image size.
ANNOTATION_SCHEMA = {
    "kind": str,  # box | mask | label
    "ImageID": str,
    "LabelName": str,  # the MID
    "Source": str,  # boxes and labels: who annotated
    "Confidence": str,  # labels: 1 positive, 0 negative; boxes: 1
    "XMin": float,
    "XMax": float,
    "YMin": float,
    "YMax": float,
    "IsOccluded": str,
    "IsTruncated": str,
    "IsGroupOf": str,
    "IsDepiction": str,
    "IsInside": str,
    "MaskPath": str,  # masks: the member of the split's mask zip
    "BoxID": str,
    "PredictedIoU": str,
    "Clicks": str,
    "upstream_file": str,
    "upstream_row": int,  # 1 = first data row
}
COORDINATES = {"boxes": ("XMin", "XMax", "YMin", "YMax"), "masks": ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax")}
KIND_OF = {"boxes": "box", "masks": "mask", "labels": "label"}


def annotation_kinds(label_types: list[str]) -> list[str]:
    """The CSVs to read: those of the chosen label types; boxes as well when only images are
    chosen, to know which images show the class."""
    kinds = [kind for kind in ("boxes", "masks", "labels") if kind in label_types]
    return kinds or ["boxes"]


def scan_annotations(path, upstream: str, kind: str, mids: list[str]) -> "pl.LazyFrame":
    """The rows of one upstream annotation CSV for `mids`, in ANNOTATION_SCHEMA (streamed: the train
    box CSV is gigabytes)."""
    lf = pl.scan_csv(path, infer_schema=False).with_row_index("upstream_row", offset=1).filter(pl.col("LabelName").is_in(mids))
    columns = []
    for name, dtype in ANNOTATION_SCHEMA.items():
        if name == "kind":
            columns.append(pl.lit(KIND_OF[kind]).alias(name))
        elif name == "upstream_file":
            columns.append(pl.lit(upstream).alias(name))
        elif kind in COORDINATES and name in ("XMin", "XMax", "YMin", "YMax"):
            source = COORDINATES[kind][("XMin", "XMax", "YMin", "YMax").index(name)]
            columns.append(pl.col(source).cast(pl.Float64, strict=False).alias(name))
        elif name in lf.collect_schema().names():
            columns.append(pl.col(name).cast(dtype, strict=False))
        else:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
    return lf.select(columns)


@dg.asset(
    io_manager_key="table_io_manager",
    required_resource_keys={"store", "openimages"},
    group_name="openimages",
    kinds={"parquet"},
    description="Open Images' 600 boxable classes (MID, display name, segmentable), the chosen ones marked; adds their partitions.",
)
def openimages_classes(context: dg.AssetExecutionContext):
    store: DatasetStore = context.resources.store
    oi: OpenImages = context.resources.openimages
    counter = FetchLedger(store.backend.staging_base())  # counts bytes only
    path = oi.cached_upstream(store, CLASS_DESCRIPTIONS, counter)
    if path is None:
        raise dg.Failure(f"no class list at {oi.annotation_url(CLASS_DESCRIPTIONS)}")
    descriptions = read_class_descriptions(path)
    store.write(layout_key(f"{oi.folder}/csv/class-descriptions-boxable.csv"), lambda tmp: tmp.write_bytes(path.read_bytes()))
    segmentation = oi.cached_upstream(store, SEGMENTATION_CLASSES, counter)
    segmentable = set(segmentation.read_text().split()) if segmentation else set()
    try:
        chosen = resolve_classes(descriptions, oi.class_list)
    except UnknownClass as error:
        raise dg.Failure(str(error), allow_retries=False) from None
    table = descriptions.with_columns(
        pl.struct("display_name", "mid").map_elements(lambda r: class_folder(r["display_name"], r["mid"]), return_dtype=pl.String).alias("folder"),
        pl.col("mid").is_in(list(segmentable)).alias("segmentable"),
        pl.col("mid").is_in([mid for mid, _ in chosen]).alias("chosen"),
    )
    keys = table.filter("chosen")["folder"].to_list()
    known = set(context.instance.get_dynamic_partitions(CLASS_PARTITIONS.name))
    if new := [key for key in keys if key not in known]:
        context.instance.add_dynamic_partitions(CLASS_PARTITIONS.name, new)
    context.add_output_metadata(
        {"classes": table.height, "chosen": ", ".join(keys) or "none", "new_partitions": len(new), "bytes_fetched": counter.bytes_fetched}
    )
    return table


@dg.asset(
    partitions_def=SPLIT_PARTITIONS,
    io_manager_key="table_io_manager",
    required_resource_keys={"store", "openimages"},
    group_name="openimages",
    kinds={"parquet"},
    description="One split's boxes, masks and image-level labels of the chosen classes, from the upstream CSVs (kept under ROOT by ETag).",
)
def openimages_annotations(context: dg.AssetExecutionContext, openimages_classes):
    store: DatasetStore = context.resources.store
    oi: OpenImages = context.resources.openimages
    split = context.partition_key
    mids = openimages_classes.filter("chosen").collect()["mid"].to_list()
    counter = FetchLedger(store.backend.staging_base())
    frames, absent = [], []
    for kind in annotation_kinds(oi.label_type_list):
        upstream = annotation_file(split, kind)
        path = oi.cached_upstream(store, upstream, counter)
        if path is None:
            absent.append(upstream)
            context.log.warning(f"{oi.annotation_url(upstream)} does not exist: no {kind} for {split}")
            continue
        frames.append(scan_annotations(path, upstream, kind, mids))
    table = pl.concat(frames) if frames else pl.LazyFrame(schema=ANNOTATION_SCHEMA)
    counts = dict(table.group_by("kind").len().collect().iter_rows())
    context.add_output_metadata(
        {
            **{f"rows_{kind}": counts.get(kind, 0) for kind in KIND_OF.values()},
            "absent_upstream_files": ", ".join(absent) or "none",
            "bytes_fetched": counter.bytes_fetched,
        }
    )
    return table


def sample_images(annotations: "pl.DataFrame", max_samples: int, seed: int) -> list[str]:
    """The class's images (a box, a mask or a positive label), at most `max_samples` of them, chosen
    by a seeded hash of the ImageID: the same choice on every run, stable as upstream grows."""
    shown = annotations.filter((pl.col("kind") != "label") | (pl.col("Confidence") == "1")).select("ImageID").unique()
    ordered = shown.with_columns(plh.concat_str(pl.lit(str(seed)), pl.col("ImageID")).nchash.xxhash64().alias("order")).sort("order", "ImageID")
    ids = ordered["ImageID"].to_list()
    return ids[:max_samples] if max_samples else ids


# a partition's rows: the manifest's columns, and what the fetcher needs for each kind of target
ROW_SCHEMA = {
    "split": str, "modality": str, "source": str, "source_dataset": str, "infos_file": str,
    "infos_row": int, "row_id": int, "target": str, "kind": str, "url": str,
    "copy_from": list[str], "archive": str, "member": str, "content": str,
}  # fmt: skip


def partition_rows(oi: OpenImages, spec: SourceSpec, classes: "pl.DataFrame", annotations: "pl.DataFrame", class_key: str, split: str) -> "pl.DataFrame":
    """The targets of one (class, split): images, masks, the annotation CSV and the id list."""
    (mid, name) = classes.filter(pl.col("folder") == class_key).select("mid", "display_name").row(0)
    label_types = oi.label_type_list
    mine = annotations.filter(pl.col("LabelName") == mid)
    ids = sample_images(mine, oi.max_samples, oi.seed)
    mine = mine.filter(pl.col("ImageID").is_in(ids)).sort("ImageID", "kind", "upstream_row")
    written = mine.filter(pl.col("kind").is_in([k for t, k in (("boxes", "box"), ("masks", "mask"), ("labels", "label")) if t in label_types]))
    folder = oi.folder
    others = [f for f in classes.filter("chosen")["folder"].to_list() if f != class_key]
    first = mine.unique("ImageID", keep="first", maintain_order=True)
    base = {"split": split, "source": spec.name, "source_dataset": SOURCE_DATASET, "row_id": None}
    rows = []
    if "images" in label_types:
        for image_id, upstream, row in first.select("ImageID", "upstream_file", "upstream_row").iter_rows():
            rows.append(
                {
                    **base, "modality": "image", "kind": "image", "infos_file": upstream, "infos_row": row,
                    "target": f"{folder}/images/{split}/{class_key}/{image_id}.jpg", "url": oi.image_url(split, image_id),
                    "copy_from": [f"{folder}/images/{split}/{other}/{image_id}.jpg" for other in others],
                }
            )  # fmt: skip
    if "masks" in label_types:
        masks = mine.filter((pl.col("kind") == "mask") & pl.col("MaskPath").is_not_null())
        for mask_path, upstream, row in masks.select("MaskPath", "upstream_file", "upstream_row").iter_rows():
            rows.append(
                {
                    **base, "modality": "mask", "kind": "mask", "infos_file": upstream, "infos_row": row,
                    "target": f"{folder}/masks/{split}/{mask_path}", "archive": mask_zip(split, mask_path), "member": mask_path,
                }
            )  # fmt: skip
    if not mine.height:
        # nothing to place; written files would stay "already present" once the table has the class
        return pl.DataFrame(schema=ROW_SCHEMA)
    stem = mid_stem(mid)
    table_files = {
        f"{folder}/csv/{split}/{stem}_annotations.csv": annotation_csv(written, folder, split, class_key),
        f"{folder}/downloader_IDs_for_{stem}_{split}.txt": "".join(f"{split}/{image_id}\n" for image_id in ids),
    }
    for target, content in table_files.items():
        rows.append({**base, "modality": "annotations", "kind": "table", "infos_file": None, "infos_row": None, "target": target, "content": content})
    return pl.DataFrame(rows, schema=ROW_SCHEMA)


def annotation_csv(annotations: "pl.DataFrame", folder: str, split: str, class_key: str) -> str:
    """The class's annotation CSV: ANNOTATION_SCHEMA plus the placed files' paths relative to ROOT/<folder>."""
    with_paths = annotations.with_columns(
        pl.concat_str(pl.lit(f"images/{split}/{class_key}/"), pl.col("ImageID"), pl.lit(".jpg")).alias("image_path"),
        pl.when(pl.col("kind") == "mask").then(pl.concat_str(pl.lit(f"masks/{split}/"), pl.col("MaskPath"))).alias("mask_path"),
    )
    return with_paths.write_csv()


def split_of_partition() -> dg.PartitionMapping:
    """Each (class, split) partition reads its split's annotation table (the mapping is marked beta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="split")


def build_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    # the factory calls this while it builds SOURCE_ASSETS: import it here, not at module level
    from encord_assets.sources.factory import STEP_RETRY, fetch_partition

    @dg.asset(
        name=spec.name,
        partitions_def=dg.MultiPartitionsDefinition({"class": CLASS_PARTITIONS, "split": SPLIT_PARTITIONS}),
        ins={
            "annotations": dg.AssetIn("openimages_annotations", partition_mapping=split_of_partition()),
            "classes": dg.AssetIn("openimages_classes"),
        },
        io_manager_key="dataset_io_manager",
        required_resource_keys={"store", "operations", spec.fetcher},
        group_name="openimages",
        pool=spec.pool,
        retry_policy=STEP_RETRY,
        kinds={spec.modality},
        description="Images, masks, annotation CSV and id list of one Open Images class and split, in the OID layout.",
        metadata={"source_dataset": spec.dataset, "fetcher": spec.fetcher},
    )
    def openimages_asset(context: dg.AssetExecutionContext, annotations, classes):
        dimensions = context.partition_key.keys_by_dimension

        def select_rows(fetcher: OpenImages, work: PartitionWork) -> pl.DataFrame:
            rows = partition_rows(fetcher, spec, classes.collect(), annotations.collect(), dimensions["class"], dimensions["split"])
            counts = dict(rows.group_by("kind").len().iter_rows())
            work.log.info(f"{dimensions['class']} {dimensions['split']}: {counts.get('image', 0)} images, {counts.get('mask', 0)} masks")
            if not rows.height:
                work.log.warning(
                    f"no annotations of {dimensions['class']} in the {dimensions['split']} table: absent upstream, or the class was "
                    f"chosen after openimages_annotations {dimensions['split']} ran (materialize it again)"
                )
            return rows

        return fetch_partition(context, spec, select_rows)

    return openimages_asset


OPENIMAGES_TABLE_ASSETS = [openimages_classes, openimages_annotations]


# a mask's pixels may spill this far (a fraction of the image side) past its box
MASK_BOX_TOLERANCE = 0.05


def mask_box_problem(store: DatasetStore, target: str, box: tuple | None) -> str | None:
    """Why a placed mask does not fit its box (None when it does): not a one-band image, empty, or
    drawn outside the box; masks are compared in fractions of their own size (they are larger than
    the rescaled images)."""
    if box is None or None in box:
        return "no box for this mask in the annotation CSV"
    try:
        with store.local_file(target) as path, Image.open(path) as mask:
            mask.load()
            if len(mask.getbands()) != 1:
                return f"a mask has one band, this one {mask.mode}"
            width, height = mask.size
            bbox = mask.point(lambda v: 255 if v else 0).getbbox()
    except OSError as error:
        return f"not a decodable mask: {error}"
    if bbox is None:
        return "empty mask"
    x0, x1, y0, y1 = box
    left, top, right, bottom = bbox[0] / width, bbox[1] / height, bbox[2] / width, bbox[3] / height
    tol = MASK_BOX_TOLERANCE
    if left < x0 - tol or right > x1 + tol or top < y0 - tol or bottom > y1 + tol:
        return f"mask spans x {left:.2f}-{right:.2f}, y {top:.2f}-{bottom:.2f}, outside its box x {x0:.2f}-{x1:.2f}, y {y0:.2f}-{y1:.2f}"
    return None


def build_checks(spec: SourceSpec, asset: dg.AssetsDefinition) -> list[dg.AssetChecksDefinition]:
    from encord_assets.operations.checks import manifest_check

    return [
        manifest_check(
            spec, asset, "masks_match_boxes",
            "Every placed mask is a one-band image whose pixels lie within its box (annotation CSV).",
            masks_match_boxes,
        )
    ]


def masks_match_boxes(_spec: SourceSpec, store: DatasetStore, _operations, manifest: "pl.DataFrame", verified: str) -> dg.AssetCheckResult:
    from encord_assets.operations.checks import check_result, each_changed_file, files_on_disk

    rows = files_on_disk(manifest)
    csv = rows.filter(pl.col("target").str.ends_with("_annotations.csv"))["target"].to_list()
    table = store.read_csv(csv[0]) if csv else None
    boxes = {}
    if table is not None and table.height:
        for mask, *box in table.filter(pl.col("kind") == "mask").select("mask_path", "XMin", "XMax", "YMin", "YMax").iter_rows():
            boxes[mask] = tuple(float(v) if v else None for v in box)
    # the CSV's paths are relative to the OID folder: masks/<split>/<MaskPath>
    masks = rows.filter(pl.col("modality") == "mask").with_columns(
        box_key=pl.concat_str(pl.lit("masks/"), pl.col("target").str.split("/masks/").list.get(1, null_on_oob=True))
    )

    def test(row: dict) -> str | None:
        return mask_box_problem(store, row["target"], boxes.get(row["box_key"]))

    # a mask passed before is read again only when it, its box or the tolerance changed (a no-op run reads none)
    box_text = pl.col("box_key").replace_strict({key: repr(box) for key, box in boxes.items()}, default="none", return_dtype=pl.String)
    basis = pl.format("{}:{}", box_text, pl.lit(MASK_BOX_TOLERANCE))
    problems, skipped = each_changed_file(store, verified, masks, basis, test)
    return check_result(problems, masks.height, "fit their boxes", skipped=skipped)
