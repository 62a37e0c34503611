"""Encord import manifests of a release on the bundled sample: JSON validated with Encord's SDK models, CSV,
object URLs the local object store serves, splitting at the item limit, the asset, and encord-import's checks."""

import json
import shutil
import urllib.request

import dagster as dg
import polars as pl
import pytest

from encord_assets.cli import main
from encord_assets.infos.files import SAMPLE_INFOS_DIR
from encord_assets.products.encord import manifest as manifest_module
from encord_assets.products.encord.asset import encord_manifest, manifest_key
from encord_assets.products.encord.manifest import MAX_TITLE_CHARS, shorten_title
from encord_assets.products.encord.sdk import undocumented_keys, validate_file
from encord_assets.products.encord.urls import EncordUrls, ObjectUrlError, url_base
from encord_assets.products.release_asset import RELEASES
from encord_assets.products.releases import release_table
from encord_assets_tests.products.support import content_of, place_sample, sample_store

ODD_NAME = "a photo, café.jpg"
ODD_TARGET = f"e-mm1_1m_only/image/{ODD_NAME}"
MISSING = "e-mm1_100m_only/image/425259.jpg"


@pytest.fixture
def infos(tmp_path):
    """The sample, with an image named with a space, a comma and an é, and a triplet of two images."""
    folder = tmp_path / "infos"
    shutil.copytree(SAMPLE_INFOS_DIR, folder)
    image_csv = folder / "e-mm1_1m" / "infos" / "image.csv"
    image_csv.write_text(image_csv.read_text().replace("128436.jpg", ODD_NAME.join('""')))
    with open(folder / "e-mm1_1m" / "triplets.csv", "a") as f:
        f.write("9402,image,image,5018,5015,1\n")
    return folder


def released(root, tmp_path, infos, capsys) -> pl.DataFrame:
    store = sample_store(root)
    place_sample(store, tmp_path / "staging", missing=(MISSING,), infos_dir=infos)
    assert main(["release", "create", "r1", "--infos", str(infos), "--root", str(root)]) == 0
    capsys.readouterr()
    return release_table(store, "r1", "files").collect()


def entries_of(paths) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for path in paths:
        for kind, items in json.loads(path.read_text()).items():
            if kind != "skip_duplicate_urls":
                found.setdefault(kind, []).extend(items)
    return found


def test_release_manifest_on_s3_validates_and_urls_are_served(s3_root, objectstore, tmp_path, infos, instance, capsys):
    files = released(s3_root, tmp_path, infos, capsys)
    out = tmp_path / "out"
    command = ["encord-manifest", "latest", "--out", str(out), "--root", s3_root, "--url-provider", "endpoint"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    (manifest,) = sorted(out.glob("encord_r1_0*.json"))
    data = json.loads(manifest.read_text())
    assert data["skip_duplicate_urls"] is True and undocumented_keys(data) == []
    items = validate_file(manifest)
    assert len(items.images) == len(data["images"]) and len(items.image_groups) == 1

    bucket = s3_root.removeprefix("s3://").split("/")[0]
    base = f"{objectstore.url}/{bucket}/root"
    importable = files.filter(pl.col("modality") != "points")
    listed = [e["objectUrl"] for kind in ("videos", "audio", "images") for e in data.get(kind, [])]
    # every placed image/video/audio object exactly once
    assert len(listed) == len(set(listed)) == importable["target"].n_unique()
    by_url = {e["objectUrl"]: e for kind in ("videos", "audio", "images") for e in data.get(kind, [])}
    odd_url = f"{base}/e-mm1_1m_only/image/a%20photo%2C%20caf%C3%A9.jpg"
    assert by_url[odd_url]["title"] == ODD_NAME
    # Encord reads through its integration's credentials; an anonymous GET needs the object public
    objectstore.client().put_object_acl(Bucket=bucket, Key=f"root/{ODD_TARGET}", ACL="public-read")
    with urllib.request.urlopen(odd_url, timeout=10) as response:
        assert response.read() == content_of(ODD_TARGET)

    # audio clips only an audio row uses go under "audio"; a clip that is also a video row's file is that video
    audio_only = importable.group_by("target").agg(pl.col("modality").unique()).filter(pl.col("modality").list.eval(pl.element() == "audio").list.all())
    assert {e["objectUrl"] for e in data["audio"]} == {f"{base}/{t}" for t in audio_only["target"]}
    video = data["videos"][0]["clientMetadata"]
    assert isinstance(video["encord_video_id"], int) and video["release"] == "r1" and video["split"]
    snowman = by_url[f"{base}/e-mm1_100m_only/image/467236.jpg"]["clientMetadata"]
    assert snowman["caption"] == "Two children build a snowman in a quiet backyard." and snowman["group_count"] >= 1
    dog = next(e for e in data["audio"] if e["clientMetadata"].get("eshot_audio_id") == 1)
    assert dog["clientMetadata"]["eshot_category"] == "dog" and dog["clientMetadata"]["split"] == "eshot"
    (group,) = data["image_groups"]
    assert group["title"] == "triplet/9402" and group["createVideo"] is False
    assert {group["objectUrl_0"], group["objectUrl_1"]} <= set(by_url)

    report = json.loads((out / "encord_r1_report.json").read_text())
    points = files.filter(pl.col("modality") == "points").height
    assert points and report["left_out_rows"]["points_no_encord_data_type"] == points
    assert f"left out: {points} row(s) points_no_encord_data_type" in printed
    assert report["left_out_rows"]["file_listed_by_another_row"] == importable.height - len(listed)

    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(command) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first

    csv_out = tmp_path / "csv"
    assert main(["encord-manifest", "latest", "--format", "csv", "--out", str(csv_out), "--root", s3_root, "--url-provider", "endpoint"]) == 0
    lines = next(csv_out.glob("encord_r1_0*.csv")).read_text().splitlines()
    headers = [line for line in lines if line.startswith("ObjectUrl,")]
    assert headers == ["ObjectUrl,Video title", "ObjectUrl,Audio title", "ObjectUrl,Image title", "ObjectUrl,Image group title,Create video"]
    assert f'{odd_url},"{ODD_NAME}"' in lines
    assert len(lines) - len(headers) == len(listed) + 2


def test_split_at_max_items_and_layout_manifest(root, tmp_path, infos, instance, capsys, monkeypatch):
    released(root, tmp_path, infos, capsys)
    base = ["--root", str(root), "--object-url-base", "https://bucket.example/e-mm1"]
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(["encord-manifest", "r1", "--out", str(whole), *base]) == 0
    assert main(["encord-manifest", "r1", "--out", str(split), "--max-items", "7", *base]) == 0
    (one,) = sorted(whole.glob("encord_r1_0*.json"))
    parts = sorted(split.glob("encord_r1_0*.json"))
    total = sum(len(v) for v in entries_of([one]).values())
    assert len(parts) == -(-total // 7)
    assert all(sum(len(v) for v in entries_of([p]).values()) <= 7 for p in parts)
    assert entries_of(parts) == entries_of([one])
    assert all(validate_file(p) for p in parts)
    # large releases are grouped by file in buckets: the same entries, each key's entries together
    monkeypatch.setattr(manifest_module, "ROWS_PER_BUCKET", 10)
    bucketed = tmp_path / "bucketed"
    assert main(["encord-manifest", "r1", "--out", str(bucketed), *base]) == 0
    (in_buckets,) = sorted(bucketed.glob("encord_r1_0*.json"))
    assert {k: sorted(v, key=json.dumps) for k, v in entries_of([in_buckets]).items()} == {
        k: sorted(v, key=json.dumps) for k, v in entries_of([one]).items()
    }
    written = in_buckets.read_bytes()
    assert main(["encord-manifest", "r1", "--out", str(bucketed), *base]) == 0
    assert sorted(bucketed.glob("encord_r1_0*.json")) == [in_buckets] and in_buckets.read_bytes() == written
    capsys.readouterr()

    # a local ROOT needs the URL it was uploaded to
    assert main(["encord-manifest", "r1", "--out", str(tmp_path / "x"), "--root", str(root), "--object-url-base", ""]) == 2
    assert "--object-url-base" in capsys.readouterr().out

    layout = tmp_path / "layout"
    assert main(["encord-manifest", "--from-layout", "--infos", str(infos), "--out", str(layout), *base]) == 0
    report = json.loads((layout / "encord_layout_report.json").read_text())
    assert report["left_out_rows"]["unavailable"] >= 1
    assert entries_of(sorted(layout.glob("encord_layout_0*.json")))["images"][0]["objectUrl"].startswith("https://bucket.example/e-mm1/")


def test_asset_writes_the_manifests_into_root(root, tmp_path, infos, instance, capsys):
    released(root, tmp_path, infos, capsys)
    store = sample_store(root)
    result = dg.materialize(
        [encord_manifest],
        partition_key="r1",
        instance=instance,
        resources={"store": store, "encord_urls": EncordUrls(object_url_base="https://bucket.example/e-mm1")},
    )
    assert result.success and instance.get_dynamic_partitions(RELEASES.name) == ["r1"]
    metadata = result.asset_materializations_for_node("encord_manifest")[0].metadata
    assert metadata["entries_image_groups"].value == 1 and metadata["left_out_points_no_encord_data_type"].value > 0
    written = {key.rsplit("/", 1)[1] for key in store.find(manifest_key("r1"))}
    assert {"encord_r1_0001.json", "encord_r1_0001.csv", "encord_r1_report.json", "encord_r1_metadata_schema.json"} <= written


def test_object_url_forms():
    key = "shared/image/a b,é.jpg"
    assert url_base("s3://b/p q", "aws", "eu-west-1") + "/" == "https://b.s3.eu-west-1.amazonaws.com/p%20q/"
    assert url_base("s3://b/e-mm1", "gcp") == "gs://b/e-mm1"
    assert url_base("s3://b/e-mm1", "azure", azure_account="acct") == "https://acct.blob.core.windows.net/b/e-mm1"
    assert url_base("s3://b", "otc", "eu-de") == "https://b.obs.eu-de.otc.t-systems.com"
    assert url_base("/data", object_url_base="https://x.example/up/") == "https://x.example/up"
    from encord_assets.products.encord.urls import encode_key

    assert encode_key(key) == "shared/image/a%20b%2C%C3%A9.jpg"
    for root, provider in (("s3://b", "aws"), ("s3://b", "azure"), ("/data", "aws"), ("s3://b", "ftp")):
        with pytest.raises(ObjectUrlError):
            url_base(root, provider)


def test_long_titles_are_shortened_deterministically():
    long = "x" * 400
    assert len(shorten_title(long)) == MAX_TITLE_CHARS and shorten_title(long) == shorten_title(long)
    assert shorten_title(long) != shorten_title("x" * 399 + "y") and shorten_title("short") == "short"


def test_encord_import_checks_its_arguments_offline(tmp_path, capsys):
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"images": [{"objectUrl": "https://b.example/x.jpg", "title": "x.jpg", "typo": 1}]}))
    key = tmp_path / "key.pem"
    with pytest.raises(SystemExit) as exit_info:
        main(["encord-import", str(manifest), "--integration", "i", "--key-file", str(key)])
    assert exit_info.value.code == 2
    capsys.readouterr()
    args = ["encord-import", str(manifest), "--dataset", "d", "--integration", "i", "--key-file"]
    assert main([*args, str(key)]) == 2
    assert "no such file" in capsys.readouterr().out
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nunique-secret-4711\n")
    assert main([*args, str(key)]) == 2
    out = capsys.readouterr().out
    assert "'typo'" in out and "unique-secret-4711" not in out
    assert main([*args, str(key), "--folder", "not-a-uuid"]) == 2
    assert "not a UUID" in capsys.readouterr().out
    # a valid manifest and a key the SDK cannot read: the SDK refuses it before any request
    manifest.write_text(json.dumps({"images": [{"objectUrl": "https://b.example/x.jpg", "title": "x.jpg"}], "skip_duplicate_urls": True}))
    assert main([*args, str(key)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("error: Encord SDK:") and "unique-secret-4711" not in out
