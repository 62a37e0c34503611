"""Releases on the bundled sample, on a local and an s3:// ROOT: create (a Dagster run), list, show, pull, diff."""

import hashlib
import json

import dagster as dg
import polars as pl

from encord_assets.cli import main
from encord_assets.layout.paths import BOOKKEEPING_DIR
from encord_assets.products.release_asset import RELEASES
from encord_assets.products.releases import release_table
from encord_assets_tests.products.support import content_of, place_sample, sample_store

MISSING = "e-mm1_100m_only/image/425259.jpg"


def replace_in_root(store, target: str, data: bytes, tmp_path) -> None:
    """Another file at `target` in ROOT (as a re-fetch from a changed upstream would leave it)."""
    store.delete(target)
    staged = tmp_path / "replacement.part"
    staged.write_bytes(data)
    assert store.place_all([{"staged_path": str(staged), "target": target, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}])[0][0] == "placed"


def files_under(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.relative_to(folder).as_posix().startswith("releases/")}


def test_create_list_pull_refuse_and_report_changed_files(any_root, tmp_path, instance, capsys):
    store = sample_store(any_root)
    rows = place_sample(store, tmp_path / "staging", missing=(MISSING,))
    root = ["--root", str(any_root)]

    assert main(["release", "create", "r1", *root]) == 0
    capsys.readouterr()
    # the run is recorded in the instance, as the r1 partition of the release asset
    assert instance.get_dynamic_partitions(RELEASES.name) == ["r1"]
    (event,) = instance.fetch_materializations(dg.AssetKey("release"), limit=10).records
    assert event.partition_key == "r1"

    files = release_table(store, "r1", "files").collect()
    placed = rows.filter(pl.col("target") != MISSING)
    assert files.height == placed.height and set(files["target"]) == set(placed["target"])
    assert set(files.columns) >= {"split", "modality", "source", "target", "bytes", "sha256", "dataset_license", "encord_id", "caption", "labels"}
    assert files.filter(pl.col("target") == "e-mm1_100m_only/image/467236.jpg")["caption"].item() == "Two children build a snowman in a quiet backyard."
    assert all(files["sha256"] == [hashlib.sha256(content_of(t)).hexdigest() for t in files["target"]])
    eshot_dog = files.filter((pl.col("split") == "eshot") & (pl.col("modality") == "audio") & (pl.col("encord_id") == 1))
    assert eshot_dog["labels"].to_list() == [["dog"]]
    attribution = release_table(store, "r1", "attribution").collect()
    assert attribution["files"].sum() == files.height and "upstream" in attribution.columns

    assert main(["release", "list", "--json", *root]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["name"] == "r1" and listed["files"] == files.height

    assert main(["release", "create", "r1", *root]) == 2
    assert "release 'r1' already exists" in capsys.readouterr().out
    assert instance.get_dynamic_partitions(RELEASES.name) == ["r1"]

    pulled = tmp_path / "pulled"
    assert main(["release", "pull", "latest", "--to", str(pulled), *root]) == 0
    assert files_under(pulled) == {t: content_of(t) for t in set(files["target"])}
    assert (pulled / "releases" / "r1" / "files.parquet").is_file()
    out = capsys.readouterr().out
    assert ("linked" if store.is_local else "downloaded") in out

    # a second pull skips what is already correct; --remove-extra deletes only what is not in the release
    (pulled / "shared" / "image" / "stray.jpg").write_bytes(b"not in the release")
    assert main(["release", "pull", "r1", "--to", str(pulled), "--remove-extra", *root]) == 0
    assert f"{len(set(files['target']))} already_correct" in capsys.readouterr().out
    assert files_under(pulled) == {t: content_of(t) for t in set(files["target"])}

    changed = "e-mm1_1m_only/image/197841.jpg"
    replace_in_root(store, changed, b"other bytes", tmp_path)
    elsewhere = tmp_path / "elsewhere"
    assert main(["release", "pull", "r1", "--to", str(elsewhere), *root]) == 1
    out = capsys.readouterr().out
    assert f"{changed}: its content in ROOT no longer matches the release (not pulled)" in out
    assert not (elsewhere / changed).exists() and not list(elsewhere.rglob(".*.pull-*"))
    assert len(files_under(elsewhere)) == len(set(files["target"])) - 1
    # the earlier pull keeps the release's bytes (the replacement is a new file in ROOT)
    assert main(["release", "pull", "r1", "--to", str(pulled), *root]) == 0
    assert (pulled / changed).read_bytes() == content_of(changed)

    # filters: only images, one folder per split
    only_images = tmp_path / "only_images"
    assert main(["release", "pull", "r1", "--to", str(only_images), "--use-folders", "--filter", "modality = 'image' AND split = 'e-mm1_100m'", *root]) == 0
    expected = {f"e-mm1_100m/{t}" for t in files.filter((pl.col("modality") == "image") & (pl.col("split") == "e-mm1_100m"))["target"]}
    assert set(files_under(only_images)) == expected
    capsys.readouterr()
    assert main(["release", "pull", "r1", "--to", str(tmp_path / "x"), "--filter", "no_such_column = 1", *root]) == 2
    assert "error: --filter 'no_such_column = 1': unable to find column" in capsys.readouterr().out


def test_filters_licenses_and_diff(root, tmp_path, instance, capsys):
    store = sample_store(root)
    place_sample(store, tmp_path / "staging")
    assert main(["release", "create", "all", "--root", str(root)]) == 0
    assert main(["release", "create", "images", "--modality", "image", "--exclude-license", "CC-BY-NC-4.0", "--root", str(root)]) == 0
    images = release_table(store, "images", "files").collect()
    assert set(images["modality"]) == {"image"} and "CC-BY-NC-4.0" not in set(images["dataset_license"])
    # products describe the release: groups' non-image members are not present in it
    assert release_table(store, "images", "groups").filter(pl.col("video_present")).collect().height == 0
    assert main(["release", "create", "mit", "--license", "mit", "--root", str(root)]) == 0
    assert set(release_table(store, "mit", "files").collect()["dataset_license"]) == {"MIT"}

    capsys.readouterr()
    assert main(["release", "diff", "all", "images", "--json", "--root", str(root)]) == 0
    tables = json.loads(capsys.readouterr().out)
    every = release_table(store, "all", "files").collect()
    assert len(tables["removed"]) == every.filter(pl.col("modality") != "image")["target"].n_unique()
    assert tables["added"] == [] and tables["changed"] == []
    assert main(["release", "show", "latest", "--root", str(root)]) == 0
    assert '"name": "mit"' in capsys.readouterr().out

    # a re-fetch recorded the replacement in its manifest: the next release has the new content
    changed = "e-mm1_1m_only/image/197841.jpg"
    manifest = store.read_manifest("image_coco", "000|test")
    store.write_manifest("image_coco", "000|test", manifest.with_columns(
        pl.when(pl.col("target") == changed).then(pl.lit(hashlib.sha256(b"other bytes").hexdigest())).otherwise(pl.col("sha256")).alias("sha256")
    ))
    assert main(["release", "create", "after", "--root", str(root)]) == 0
    capsys.readouterr()
    assert main(["release", "diff", "all", "after", "--json", "--root", str(root)]) == 0
    tables = json.loads(capsys.readouterr().out)
    assert [c["target"] for c in tables["changed"]] == [changed] and tables["added"] == tables["removed"] == []
    assert main(["release", "create", "latest", "--root", str(root)]) == 2
    assert main(["release", "create", "../escape", "--root", str(root)]) == 2
    assert not (root / BOOKKEEPING_DIR / "escape").exists()
