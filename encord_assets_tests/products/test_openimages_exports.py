"""Open Images in releases and their YOLO, COCO (detection and instance segmentation) and FOLDERS exports,
on local and s3 ROOTs.

ROOT holds the bundled Open Images sample as if its source had run: the partitions' rows are planned by
the source's own `partition_rows`, their bytes are the mirror's (images, and masks read from its zips),
placed through the store with one manifest per (class, split)."""

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from encord_assets.cli import main
from encord_assets.layout.io_manager import MANIFEST_COLUMNS
from encord_assets.layout.paths import layout_key
from encord_assets.mirror import openimages as oi_mirror
from encord_assets.products.releases import release_info, release_table
from encord_assets.sources.openimages import CLASS_DESCRIPTIONS, OpenImages, annotation_file, class_folder, read_class_descriptions, resolve_classes
from encord_assets.sources.openimages_assets import annotation_kinds, partition_rows, scan_annotations
from encord_assets.sources.registry import SOURCES
from encord_assets_tests.products.support import place_sample, sample_store

SPEC = next(spec for spec in SOURCES if spec.fetcher == "openimages")
SPLITS = ("train", "validation")
HANDGUN, CAT = "/m/0gxl3", "/m/01yrx"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Path:
    """The mirror's Open Images content for the bundled sample (not served: read from disk)."""
    content = tmp_path_factory.mktemp("openimages_mirror")
    oi_mirror.build(oi_mirror.SAMPLE_DIR, content, decoys=2)
    return content / oi_mirror.PREFIX


def sample(name: str) -> pl.DataFrame:
    return pl.read_csv(oi_mirror.SAMPLE_DIR / name, infer_schema=False)


def place_openimages(store, upstream: Path, staging: Path, classes: str = "Handgun,Cat", bad_masks: dict[str, bytes] | None = None) -> None:
    oi = OpenImages(classes=classes)
    descriptions = read_class_descriptions(oi_mirror.SAMPLE_DIR / Path(CLASS_DESCRIPTIONS).name)
    chosen = [mid for mid, _ in resolve_classes(descriptions, oi.class_list)]
    table = descriptions.with_columns(
        pl.struct("display_name", "mid").map_elements(lambda r: class_folder(r["display_name"], r["mid"]), return_dtype=pl.String).alias("folder"),
        pl.col("mid").is_in(chosen).alias("chosen"),
    )
    store.write(layout_key(f"{oi.folder}/csv/class-descriptions-boxable.csv"), lambda tmp: tmp.write_bytes((oi_mirror.SAMPLE_DIR / Path(CLASS_DESCRIPTIONS).name).read_bytes()))
    staging.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        frames = [
            scan_annotations(path, upstream_file, kind, chosen)
            for kind in annotation_kinds(oi.label_type_list)
            if (path := oi_mirror.SAMPLE_DIR / Path(upstream_file := annotation_file(split, kind)).name).is_file()
        ]
        annotations = pl.concat(frames).collect()
        for folder in table.filter("chosen")["folder"]:
            rows = partition_rows(oi, SPEC, table, annotations, folder, split)
            staged = []
            for row in rows.iter_rows(named=True):
                if row["kind"] == "table":
                    data = row["content"].encode()
                elif row["kind"] == "image":
                    data = (upstream / "images" / split / row["url"].rsplit("/", 1)[-1]).read_bytes()
                else:
                    data = (bad_masks or {}).get(row["member"]) or zipfile.ZipFile(upstream / "annotations" / row["archive"]).read(row["member"])
                path = staging / f"{len(list(staging.iterdir()))}.part"
                path.write_bytes(data)
                staged.append({"staged_path": str(path), "target": row["target"], "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
            assert all(not isinstance(r, BaseException) for r in store.place_all(staged))
            manifest = rows.join(pl.DataFrame(staged).select("target", "bytes", "sha256"), on="target").with_columns(
                pl.lit("placed").alias("outcome"), pl.lit(None, pl.String).alias("error_class"), pl.lit(None, pl.String).alias("error_message")
            )
            store.write_manifest(SPEC.name, f"{folder}|{split}", manifest.select(MANIFEST_COLUMNS))


def class_boxes(split: str) -> pl.DataFrame:
    """The sample's boxes of the two chosen classes in `split`, in fractions."""
    boxes = sample(Path(annotation_file(split, "boxes")).name).filter(pl.col("LabelName").is_in([HANDGUN, CAT]))
    return boxes.with_columns(pl.col("XMin", "XMax", "YMin", "YMax").cast(pl.Float64))


def expected_mask(upstream: Path, split: str, mask_path: str, size: tuple[int, int]) -> np.ndarray:
    from encord_assets.sources.openimages import mask_zip

    with zipfile.ZipFile(upstream / "annotations" / mask_zip(split, mask_path)) as zf, zf.open(mask_path) as f, Image.open(f) as mask:
        assert mask.size == oi_mirror.MASK_SIZE != size  # larger than the image: resized
        return np.asarray(mask.resize(size, Image.Resampling.NEAREST)) > 0


def test_open_images_release_exports_yolo_coco_and_folders(any_root, tmp_path, instance, upstream):
    from pycocotools.coco import COCO

    store = sample_store(any_root)
    place_openimages(store, upstream, tmp_path / "staging")
    root = ["--root", str(any_root)]
    assert main(["release", "create", "r1", *root]) == 0
    files = release_table(store, "r1", "files").collect()
    assert set(files["split"]) == set(SPLITS) and set(files["source_dataset"]) == {"Open Images V6"}
    boxes = {split: class_boxes(split) for split in SPLITS}
    shared = set(boxes["train"].filter(pl.col("LabelName") == HANDGUN)["ImageID"]) & set(boxes["train"].filter(pl.col("LabelName") == CAT)["ImageID"])
    assert shared  # an image in two classes: one release file per class folder
    assert files.filter(pl.col("file_name") == f"{min(shared)}.jpg")["labels"].to_list() == [["Cat"], ["Handgun"]]
    masks = sample("train-annotations-object-segmentation.csv")
    assert masks.filter(pl.col("LabelName") == CAT).height == 0  # Cat: boxes only
    handgun_masks = {split: sample(Path(annotation_file(split, "masks")).name).filter(pl.col("LabelName") == HANDGUN) for split in SPLITS}
    info = release_info(store, "r1")
    assert info["boxes"] == sum(b.height for b in boxes.values()) and info["masks"] == sum(m.height for m in handgun_masks.values())

    # YOLO: one line per box of either class, normalized xywh
    yolo = tmp_path / "yolo"
    assert main(["export", "r1", "--format", "yolo", "--extract-to", str(yolo), *root]) == 0
    for split in SPLITS:
        names = (yolo / split / "data.yaml").read_text()
        assert "Cat" in names and "Handgun" in names
        class_ids = {HANDGUN: 1, CAT: 0}  # sorted display names
        for image_id, image_boxes in boxes[split].group_by("ImageID"):
            lines = (yolo / split / "labels" / f"{image_id[0]}.txt").read_text().split()
            got = sorted(tuple(round(float(v), 4) for v in lines[n : n + 5]) for n in range(0, len(lines), 5))
            want = sorted(
                (class_ids[r["LabelName"]], round((r["XMin"] + r["XMax"]) / 2, 4), round((r["YMin"] + r["YMax"]) / 2, 4), round(r["XMax"] - r["XMin"], 4), round(r["YMax"] - r["YMin"], 4))
                for r in image_boxes.iter_rows(named=True)
            )
            assert np.allclose(got, want, atol=2e-3), (split, image_id)
            assert (yolo / split / "images" / f"{image_id[0]}.jpg").read_bytes() == (upstream / "images" / split / f"{image_id[0]}.jpg").read_bytes()
    assert all(len((yolo / "train" / "labels" / f"{i}.txt").read_text().split("\n")) >= 2 for i in shared)

    # COCO: the detection file and the instance segmentation file load with pycocotools; masks resized to the image
    coco_dir = tmp_path / "coco"
    assert main(["export", "r1", "--format", "coco", "--extract-to", str(coco_dir), *root]) == 0
    for split in SPLITS:
        detection = COCO(str(coco_dir / split / "annotations.json"))
        assert len(detection.getAnnIds()) == boxes[split].height
        segmentation = COCO(str(coco_dir / split / "segmentation.json"))
        assert segmentation.getCatIds(catNms=["Handgun"]) == detection.getCatIds(catNms=["Handgun"])
        annotations = segmentation.loadAnns(segmentation.getAnnIds())
        assert len(annotations) == handgun_masks[split].height
        images = {image["id"]: image for image in segmentation.loadImgs(segmentation.getImgIds())}
        # mask annotations in MaskPath order of each image, as the sample lists them
        by_image = {}
        for row in handgun_masks[split].sort("MaskPath").iter_rows(named=True):
            by_image.setdefault(f"{row['ImageID']}.jpg", []).append(row["MaskPath"])
        for annotation in annotations:
            image = images[annotation["image_id"]]
            assert (image["width"], image["height"]) == oi_mirror.IMAGE_SIZE
            mask_path = by_image[image["file_name"]].pop(0)
            assert np.array_equal(segmentation.annToMask(annotation) > 0, expected_mask(upstream, split, mask_path, oi_mirror.IMAGE_SIZE))
            assert annotation["category_id"] == segmentation.getCatIds(catNms=["Handgun"])[0] and annotation["iscrowd"] == 0

    # FOLDERS: <split>/<class>/<ImageID>.jpg, an image of two classes in both
    folders = tmp_path / "folders"
    assert main(["export", "r1", "--format", "folders", "--extract-to", str(folders), *root]) == 0
    laid = {p.relative_to(folders).as_posix() for p in folders.rglob("*.jpg")}
    want = {
        f"{split}/{'Handgun' if r['LabelName'] == HANDGUN else 'Cat'}/{r['ImageID']}.jpg"
        for split in SPLITS for r in boxes[split].iter_rows(named=True)
    }  # fmt: skip
    assert laid == want and all(f"train/{c}/{i}.jpg" in laid for c in ("Cat", "Handgun") for i in shared)


def test_an_undecodable_mask_fails_only_its_row_and_filters_apply(root, tmp_path, instance, upstream, capsys):
    from pycocotools.coco import COCO

    store = sample_store(root)
    place_sample(store, tmp_path / "sample_staging")  # E-MM1's sample beside Open Images
    masks = sample("validation-annotations-object-segmentation.csv").filter(pl.col("LabelName") == HANDGUN)
    bad = masks["MaskPath"][0]
    place_openimages(store, upstream, tmp_path / "staging", classes="Handgun", bad_masks={bad: b"\x89PNG\r\n\x1a\n not a PNG"})
    assert main(["release", "create", "all", "--root", str(root)]) == 0
    everything = release_table(store, "all", "files").collect()
    assert {"e-mm1_100m", "e-mm1_1m", "eshot", "train", "validation"} <= set(everything["split"])
    assert everything.filter(pl.col("source") == SPEC.name)["labels"].to_list() == [["Handgun"]] * len(list((root / "OID_V6" / "images").rglob("*.jpg")))
    assert main(["release", "create", "val", "--root", str(root), "--split", "validation", "--source", "Open Images V6"]) == 0
    assert set(release_table(store, "val", "files").collect()["split"]) == {"validation"}
    assert set(release_table(store, "val", "masks").collect()["split"]) == {"validation"}
    assert main(["export", "val", "--format", "darwin_json", "--extract-to", str(tmp_path / "darwin"), "--root", str(root)]) == 0
    items = [json.loads(p.read_text())["item"] for p in (tmp_path / "darwin").rglob("*.json")]
    assert sorted(i["source_info"]["item_id"] for i in items) == sorted(f"validation/image/{t}" for t in release_table(store, "val", "files").collect()["target"])
    out = tmp_path / "coco"
    assert main(["export", "val", "--format", "coco", "--extract-to", str(out), "--root", str(root)]) == 1
    printed = capsys.readouterr().out
    assert f"OID_V6/masks/validation/{bad}: not a decodable mask" in printed
    segmentation = COCO(str(out / "validation" / "segmentation.json"))
    assert len(segmentation.getAnnIds()) == masks.height - 1
    assert json.loads(printed.splitlines()[-2])["masks"] == masks.height - 1


def test_what_the_open_images_source_placed_is_released_and_exported(root, tmp_path, instance, monkeypatch):
    """Through the real source (Dagster runs against the mirror): one class and split, then release and COCO."""
    from pycocotools.coco import COCO

    from encord_assets.materialize import Materializer
    from encord_assets.mirror.server import Mirror

    oi_mirror.build(oi_mirror.SAMPLE_DIR, tmp_path / "mirror", decoys=2)
    with Mirror(tmp_path / "mirror") as mirror:
        for name, value in {**oi_mirror.env(mirror), "OPENIMAGES_CLASSES": "Handgun", "OPENIMAGES_SPLITS": "validation"}.items():
            monkeypatch.setenv(name, value)
        materializer = Materializer(instance)
        materializer.openimages()
    assert materializer.failures == []
    assert main(["release", "create", "r1", "--root", str(root)]) == 0
    assert main(["export", "r1", "--format", "coco", "--extract-to", str(tmp_path / "coco"), "--root", str(root)]) == 0
    masks = sample("validation-annotations-object-segmentation.csv").filter(pl.col("LabelName") == HANDGUN)
    # a pull brings the images' masks along, in the OID layout
    assert main(["release", "pull", "r1", "--to", str(tmp_path / "pulled"), "--root", str(root)]) == 0
    pulled = {p.relative_to(tmp_path / "pulled").as_posix() for p in (tmp_path / "pulled" / "OID_V6").rglob("*") if p.is_file()}
    assert {f"OID_V6/masks/validation/{m}" for m in masks["MaskPath"]} <= pulled
    assert all((tmp_path / "pulled" / p).read_bytes() == (root / p).read_bytes() for p in pulled)
    segmentation = COCO(str(tmp_path / "coco" / "validation" / "segmentation.json"))
    assert len(segmentation.getAnnIds()) == masks.height
    assert len(COCO(str(tmp_path / "coco" / "validation" / "annotations.json")).getAnnIds()) == class_boxes("validation").filter(pl.col("LabelName") == HANDGUN).height
