"""Exports of a release of the bundled sample: folders, csv, spacy_ner, darwin_json (converted by darwin-py's
own COCO exporter), and the clear error of YOLO/COCO for a release without boxes."""

import json
import zipfile

import polars as pl
import pytest

from encord_assets.cli import main
from encord_assets.infos.files import SAMPLE_INFOS_DIR
from encord_assets.products.releases import release_table
from encord_assets_tests.products.support import content_of, place_sample, sample_store


@pytest.fixture
def released(any_root, tmp_path, instance):
    store = sample_store(any_root)
    place_sample(store, tmp_path / "staging")
    assert main(["release", "create", "r1", "--root", str(any_root)]) == 0
    return store, ["--root", str(any_root)]


def test_folders_csv_and_spacy_ner(released, tmp_path, capsys):
    store, root = released
    files = release_table(store, "r1", "files").collect()

    folders = tmp_path / "folders"
    assert main(["export", "r1", "--format", "folders", "--extract-to", str(folders), "--keep-download-file", "--download-file", str(tmp_path / "dataset.zip"), *root]) == 0
    laid = {p.relative_to(folders).as_posix(): p.read_bytes() for p in folders.rglob("*") if p.is_file()}
    assert laid["eshot/dog/siR2JHtXS_o_9.mp4"] == content_of("eshot/audio/siR2JHtXS_o_9.mp4")
    assert "e-mm1_1m/Good Match/z6E9CPcgYBw_16.mp4" in laid  # the annotated video of triplet 5034
    assert laid["e-mm1_100m/425259.jpg"] == content_of("e-mm1_100m_only/image/425259.jpg")  # unlabelled
    unlabelled = files.filter(pl.col("labels").list.len() == 0).unique(["split", "target"])
    assert {k for k in laid if k.count("/") == 1} == {f"{s}/{n}" for s, n in unlabelled.select("split", "file_name").iter_rows()}
    assert {n for n in zipfile.ZipFile(tmp_path / "dataset.zip").namelist() if not n.endswith("/")} == set(laid)

    csv_dir = tmp_path / "csv"
    assert main(["export", "latest", "--format", "csv", "--extract-to", str(csv_dir), *root]) == 0
    config = json.loads((csv_dir / "config.json").read_text())
    assert config == {"multi_label": False, "label_column": "labels", "split_column": "split", "label_separator": "|", "filename": "r1.csv", "csv_separator": ","}
    table = pl.read_csv(csv_dir / "r1.csv")
    assert table.height == files.height and {"encord_id", "path", "dataset_license", "caption", "labels", "sha256"} <= set(table.columns)

    spacy = tmp_path / "spacy"
    assert main(["export", "r1", "--format", "spacy_ner", "--extract-to", str(spacy), "--split", "e-mm1_1m", *root]) == 0
    assert json.loads((spacy / "config.json").read_text()) == {"splits": ["e-mm1_1m"], "colors": {}}
    entries = json.loads((spacy / "e-mm1_1m.json").read_text())
    captions = pl.read_csv(SAMPLE_INFOS_DIR / "e-mm1_1m" / "infos" / "text.csv")
    assert [(e["id"], e["text"], e["annotations"]) for e in entries] == [(i, c, []) for i, c in captions.sort("encord_text_id").rows()]


def test_darwin_json_converts_to_coco_with_darwin_py(released, tmp_path):
    from darwin.exporter import export_annotations
    from darwin.exporter.formats import coco

    store, root = released
    darwin = tmp_path / "darwin"
    assert main(["export", "r1", "--format", "darwin_json", "--extract-to", str(darwin), *root]) == 0
    documents = sorted(darwin.rglob("*.json"))
    files = release_table(store, "r1", "files").collect()
    assert len(documents) == files.unique(["split", "target"]).height
    dog = json.loads((darwin / "eshot" / "eshot/audio/siR2JHtXS_o_9.mp4.json").read_text())
    assert dog["version"] == "2.0" and [a["name"] for a in dog["annotations"]] == ["dog"] and "tag" in dog["annotations"][0]

    images = [p for p in documents if json.loads(p.read_text())["item"]["slots"][0]["type"] == "image"]
    out = tmp_path / "coco"
    out.mkdir()
    export_annotations(coco.export, images, out)
    converted = json.loads((out / "output.json").read_text())
    assert len(converted["images"]) == len(images)
    first = json.loads(images[0].read_text())
    (entry,) = [i for i in converted["images"] if i["file_name"] == first["item"]["name"] and i["width"] == first["item"]["slots"][0]["width"]][:1]
    assert entry["height"] == first["item"]["slots"][0]["height"] > 0


def test_yolo_and_coco_need_boxes(released, tmp_path, capsys):
    _, root = released
    for fmt in ("yolo", "coco"):
        assert main(["export", "r1", "--format", fmt, "--extract-to", str(tmp_path / fmt), *root]) == 2
        assert "release 'r1' holds no boxes or masks" in capsys.readouterr().out
    # releases holding Open Images detections: products/test_openimages_exports.py
