"""Open Images V6 by class through Dagster against the mirror: placement, layout, bytes, ZIP64,
corrupt members, classes without masks, unknown classes, checks and a re-run that fetches nothing."""

import shutil
import zipfile
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import requests

from encord_assets.materialize import Materializer
from encord_assets.mirror import openimages as oi_mirror
from encord_assets.mirror.server import Mirror
from encord_assets.operations.fill import FILL_SENSOR
from encord_assets.operations.retry_sensor import RETRY_SENSOR
from encord_assets.sources.openimages import mask_zip
from encord_assets_tests.conftest import manifest_of

ASSET = "image_openimagesv6"
HANDGUN = "Handgun_m0gxl3"
CAT = "Cat_m01yrx"


@pytest.fixture
def serve(tmp_path, monkeypatch, instance):
    """serve(csv_dir, classes, **build options) -> (mirror, materializer, content dir)."""
    mirrors = []

    def start(csv_dir: Path, classes: str, **options):
        content = tmp_path / "mirror"
        oi_mirror.build(csv_dir, content, **options)
        mirror = Mirror(content).start()
        mirrors.append(mirror)
        for name, value in oi_mirror.env(mirror).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OPENIMAGES_CLASSES", classes)
        return mirror, Materializer(instance), content

    yield start
    for mirror in mirrors:
        mirror.stop()


def sample_table(name: str) -> pl.DataFrame:
    return pl.read_csv(oi_mirror.SAMPLE_DIR / name, infer_schema=False)


def test_sample_classes_are_placed_in_the_oid_layout_and_a_rerun_fetches_nothing(serve, root):
    mirror, materializer, _ = serve(oi_mirror.SAMPLE_DIR, "handgun, /m/01yrx")  # a name (any case) and a MID
    materializer.openimages()
    assert materializer.failures == []
    oid = root / "OID_V6"
    boxes = sample_table("oidv6-train-annotations-bbox.csv")
    masks = sample_table("train-annotations-object-segmentation.csv")
    for folder, mid in ((HANDGUN, "/m/0gxl3"), (CAT, "/m/01yrx")):
        ids = set(boxes.filter(pl.col("LabelName") == mid)["ImageID"])
        placed = {p.stem for p in (oid / "images" / "train" / folder).iterdir()}
        assert placed == ids
        for image_id in ids:
            assert (oid / "images" / "train" / folder / f"{image_id}.jpg").read_bytes() == oi_mirror.image_bytes("train", image_id)
        listed = (oid / f"downloader_IDs_for_{mid.replace('/', '')}_train.txt").read_text().split()
        assert sorted(listed) == sorted(f"train/{i}" for i in ids)
    # an image of both classes is in both folders, fetched once
    shared = set(boxes.filter(pl.col("LabelName") == "/m/0gxl3")["ImageID"]) & set(boxes.filter(pl.col("LabelName") == "/m/01yrx")["ImageID"])
    assert shared and all((oid / "images" / "train" / f / f"{i}.jpg").is_file() for f in (HANDGUN, CAT) for i in shared)
    (cat_run,) = materializer.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(ASSET), asset_partitions=[f"{CAT}|train"]), limit=1
    ).records
    assert cat_run.asset_materialization.metadata["note_images_copied_from_other_classes"].value == len(shared)
    handgun_masks = masks.filter(pl.col("LabelName") == "/m/0gxl3")["MaskPath"].to_list()
    assert handgun_masks and all((oid / "masks" / "train" / m).is_file() for m in handgun_masks)
    dog_masks = masks.filter(pl.col("LabelName") == "/m/0bt9lr")["MaskPath"].to_list()
    assert not any((oid / "masks" / "train" / m).exists() for m in dog_masks)

    # the class without masks: images and boxes, zero masks reported
    cat = manifest_of(root, ASSET, f"{CAT}|train")
    assert cat.filter(pl.col("modality") == "mask").height == 0
    assert set(cat["outcome"]) == {"placed"}
    cat_csv = pl.read_csv(oid / "csv" / "train" / "m01yrx_annotations.csv", infer_schema=False)
    assert set(cat_csv["kind"]) == {"box", "label"}
    handgun_csv = pl.read_csv(oid / "csv" / "train" / "m0gxl3_annotations.csv", infer_schema=False)
    assert set(handgun_csv.filter(pl.col("kind") == "mask")["mask_path"]) == {f"masks/train/{m}" for m in handgun_masks}
    assert (oid / "csv" / "class-descriptions-boxable.csv").read_bytes() == (oi_mirror.SAMPLE_DIR / "class-descriptions-boxable.csv").read_bytes()
    # absent upstream files (no test split, no validation labels) are reported, not errors
    validation = sample_table("validation-annotations-object-segmentation.csv").filter(pl.col("LabelName") == "/m/0gxl3")
    assert manifest_of(root, ASSET, f"{HANDGUN}|validation").filter(pl.col("modality") == "mask").height == validation.height

    mirror.reset_stats()
    materializer.failures.clear()
    materializer.openimages()
    assert materializer.failures == [] and mirror.stats()["bytes_sent"] == 0  # only HEADs of the CSVs
    again = manifest_of(root, ASSET, f"{HANDGUN}|train")
    assert set(again["outcome"]) == {"already_present"}


def test_checks_pass_and_catch_a_mask_outside_its_box(serve, root):
    _, materializer, _ = serve(oi_mirror.SAMPLE_DIR, "Handgun")
    materializer.openimages()
    job = materializer.defs.resolve_job_def(f"fill_{ASSET}")

    def checks():
        result = job.execute_in_process(partition_key=f"{HANDGUN}|train", instance=materializer.instance, raise_on_error=False)
        return {e.check_name: e for e in result.get_asset_check_evaluations()}

    found = checks()
    assert all(found[name].passed for name in ("files_match_manifest", "files_decode", "masks_match_boxes"))
    mask = next((root / "OID_V6" / "masks" / "train").iterdir())
    # the same size and a valid PNG, drawn in the wrong corner: only the box check notices
    csv = pl.read_csv(root / "OID_V6" / "csv" / "train" / "m0gxl3_annotations.csv", infer_schema=False)
    box = csv.filter(pl.col("mask_path") == f"masks/train/{mask.name}").row(0, named=True)
    far = (0.0, 0.05, 0.0, 0.05) if float(box["XMin"]) > 0.1 else (0.9, 1.0, 0.9, 1.0)
    mask.write_bytes(oi_mirror.mask_bytes(mask.name, far))
    assert "outside its box" in checks()["masks_match_boxes"].description


def test_unknown_class_names_the_closest(serve):
    _, materializer, _ = serve(oi_mirror.SAMPLE_DIR, "Handgnu")
    with pytest.raises(dg.Failure, match="Handgun"):
        materializer.run("openimages_classes", raise_on_error=True)


def one_class_csvs(folder: Path, masks_per_zip: int = 3) -> tuple[Path, list[str]]:
    """A class with masks in zip `0` only, plus the class list."""
    folder.mkdir()
    shutil.copy(oi_mirror.SAMPLE_DIR / "class-descriptions-boxable.csv", folder)
    lines, names = ["MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks"], []
    for n in range(masks_per_zip):
        image_id = f"0{n:015x}"
        name = f"{image_id}_m0gxl3_{n:08x}.png"
        names.append(name)
        lines.append(f"{name},{image_id},/m/0gxl3,{n:08x},0.2,0.6,0.2,0.7,0.8,")
    (folder / "train-annotations-object-segmentation.csv").write_text("\n".join(lines) + "\n")
    return folder, names


def test_masks_of_one_class_fetch_little_more_than_their_members_from_a_zip64(serve, tmp_path, root, monkeypatch):
    csv_dir, names = one_class_csvs(tmp_path / "csv")
    monkeypatch.setenv("OPENIMAGES_LABEL_TYPES", "masks")
    monkeypatch.setenv("OPENIMAGES_SPLITS", "train")
    # zip 0 past 65,535 members: ZIP64 end records
    _, materializer, content = serve(csv_dir, "Handgun", decoys=4, decoys_by_zip={"0": 66_000})
    archive = content / "openimages" / "annotations" / mask_zip("train", names[0])
    with zipfile.ZipFile(archive) as zf:
        assert len(zf.infolist()) > 65_535
        infos = [zf.getinfo(name) for name in names]
        directory = archive.stat().st_size - zf.start_dir
    materializer.openimages()
    assert materializer.failures == []
    for name in names:
        assert (root / "OID_V6" / "masks" / "train" / name).is_file()
    event = materializer.instance.get_latest_materialization_event(dg.AssetKey(ASSET))
    metadata = event.asset_materialization.metadata
    fetched = metadata["bytes_fetched"].value
    needed = sum(30 + len(i.filename) + len(i.extra) + i.compress_size for i in infos) + directory
    assert 0 < fetched <= 1.2 * needed
    # three masks among 66,000 members: coalesced ranges, and why
    assert metadata["read_method"].value == "ranges" and "round trip" in metadata["read_reason"].value
    sixteen = sum(p.stat().st_size for p in archive.parent.glob("train-masks-*.zip"))
    # tiny decoys make this directory a quarter of its zip (upstream's ~14 MB directories sit in ~GB zips)
    assert fetched < sixteen / 3

    # a later run (another class of the split, or a lost file) finds the directory under ROOT
    (cached,) = (root / "_encord_assets" / "openimages" / "zip_entries" / archive.name).iterdir()
    assert pl.read_parquet(cached).height > 65_535
    (root / "OID_V6" / "masks" / "train" / names[1]).unlink()
    materializer.openimages()
    assert materializer.failures == [] and (root / "OID_V6" / "masks" / "train" / names[1]).is_file()
    event = materializer.instance.get_latest_materialization_event(dg.AssetKey(ASSET))
    again = event.asset_materialization.metadata["bytes_fetched"].value
    assert 0 < again <= 1.2 * (30 + len(names[1]) + len(infos[1].extra) + infos[1].compress_size) + 512  # the member, a 1-byte round trip probe


def test_a_corrupt_member_or_a_missing_image_fails_only_its_row(serve, tmp_path, root, monkeypatch):
    csv_dir, names = one_class_csvs(tmp_path / "csv")
    (csv_dir / "oidv6-train-annotations-bbox.csv").write_text(
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"
        + "".join(f"{n.split('_')[0]},xclick,/m/0gxl3,1,0.2,0.6,0.2,0.7,0,0,0,0,0\n" for n in names)
    )
    monkeypatch.setenv("OPENIMAGES_SPLITS", "train")
    missing = names[2].split("_")[0]
    _, materializer, content = serve(csv_dir, "Handgun", missing_images=(missing,))
    archive = content / "openimages" / "annotations" / mask_zip("train", names[0])
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(names[1])
        data_at = info.header_offset + 30 + len(info.filename) + len(info.extra)
    with open(archive, "r+b") as f:
        f.seek(data_at + 40)
        byte = f.read(1)
        f.seek(data_at + 40)
        f.write(bytes([byte[0] ^ 0xFF]))
    materializer.openimages()
    manifest = manifest_of(root, ASSET, f"{HANDGUN}|train")
    by_target = {t: (o, c) for t, o, c in manifest.select("target", "outcome", "error_class").iter_rows()}
    assert by_target[f"OID_V6/masks/train/{names[1]}"] == ("failed", "corrupt_archive")
    assert by_target[f"OID_V6/images/train/{HANDGUN}/{missing}.jpg"] == ("unavailable", "http_404")
    assert by_target[f"OID_V6/masks/train/{names[0]}"][0] == "placed"
    assert by_target[f"OID_V6/masks/train/{names[2]}"][0] == "placed"
    assert not (root / "OID_V6" / "masks" / "train" / names[1]).exists()
    assert materializer.failures == [f"{ASSET} {HANDGUN}|train"]  # the failed row fails the partition, for the retry sensor


def test_on_object_storage_cached_csvs_directories_and_placed_files_go_through_the_store(serve, s3_root, monkeypatch):
    monkeypatch.setenv("OPENIMAGES_SPLITS", "validation")
    mirror, materializer, _ = serve(oi_mirror.SAMPLE_DIR, "Handgun")
    materializer.openimages()
    assert materializer.failures == []
    manifest = manifest_of(s3_root, ASSET, f"{HANDGUN}|validation")
    assert set(manifest["outcome"]) == {"placed"} and manifest.filter(pl.col("modality") == "mask").height > 0
    mirror.reset_stats()
    materializer.openimages()
    assert materializer.failures == [] and mirror.stats()["bytes_sent"] == 0
    assert set(manifest_of(s3_root, ASSET, f"{HANDGUN}|validation")["outcome"]) == {"already_present"}


def test_the_fill_sensor_requests_the_chosen_classes_partitions_and_the_retry_sensor_sees_a_failed_one(serve, monkeypatch):
    monkeypatch.setenv("OPENIMAGES_ATTEMPTS", "1")
    monkeypatch.setenv("ENCORD_FILL_TICK_SECONDS", "600")  # one fill tick reaches Open Images, the last source
    mirror, materializer, _ = serve(oi_mirror.SAMPLE_DIR, "Handgun")
    assert materializer.run("openimages_classes").success
    assert materializer.run("openimages_annotations", "validation").success
    repository = materializer.defs.get_repository_def()
    defs = materializer.defs
    with dg.build_sensor_context(instance=materializer.instance, definitions=defs, resources=defs.resources) as context:
        requests = repository.get_sensor_def(FILL_SENSOR)(context).run_requests
    mine = [r for r in requests if r.job_name == f"fill_{ASSET}"]
    assert sorted(r.partition_key for r in mine) == [f"{HANDGUN}|{split}" for split in ("test", "train", "validation")]

    mirror.set_faults(1.0, kinds=("503",), path_prefix="/openimages/images/")
    assert not materializer.run(ASSET, f"{HANDGUN}|validation").success
    with dg.build_sensor_context(instance=materializer.instance, definitions=defs, resources=defs.resources) as context:
        result = repository.get_sensor_def(RETRY_SENSOR)(context)
    assert [(r.job_name, r.partition_key) for r in result.run_requests] == [(f"fill_{ASSET}", f"{HANDGUN}|validation")]


def test_a_rebuilt_mirror_keeps_its_etags_so_a_second_demo_fetches_nothing(tmp_path):
    def etags():
        with Mirror(tmp_path / "mirror") as mirror:
            base = oi_mirror.env(mirror)["OPENIMAGES_ANNOTATIONS_URL"]
            return [requests.head(f"{base}/{path}").headers["ETag"] for path in ("v5/class-descriptions-boxable.csv", mask_zip("train", "0"))]

    oi_mirror.build(oi_mirror.SAMPLE_DIR, tmp_path / "mirror")
    first = etags()
    oi_mirror.build(oi_mirror.SAMPLE_DIR, tmp_path / "mirror")
    assert etags() == first


def test_max_samples_is_a_seeded_choice_that_stays_put_as_upstream_grows():
    from encord_assets.sources.openimages_assets import sample_images

    def table(ids):
        return pl.DataFrame({"kind": ["box"] * len(ids), "ImageID": ids, "Confidence": ["1"] * len(ids)})

    ids = [f"{n:016x}" for n in range(50)]
    chosen = sample_images(table(ids), 10, seed=0)
    assert len(chosen) == 10 and chosen == sample_images(table(list(reversed(ids))), 10, seed=0)
    assert sample_images(table(ids), 10, seed=1) != chosen
    grown = sample_images(table(ids + [f"{n:016x}" for n in range(50, 5000)]), 10, seed=0)
    # new images may take places; an old image is never swapped for another old one
    assert set(grown) & set(ids) <= set(chosen)
    assert sorted(sample_images(table(ids), 0, seed=0)) == ids  # 0: all
