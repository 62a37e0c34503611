"""What a partition run still has to fetch, decided from the store and the last manifest by column."""

import hashlib

import polars as pl
import pytest

from encord_assets.layout.paths import UnsafePath, layout_key, unsafe_layout_keys
from encord_assets.layout.plan import plan_partition
from encord_assets.store import DatasetStore

ASSET, KEY = "image_coco", "000|e-mm1_1m"


def rows_for(targets: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"infos_row": range(1, len(targets) + 1), "target": targets})


def test_each_target_is_settled_from_the_store_and_the_manifest_or_left_to_fetch(tmp_path):
    store = DatasetStore(root=str(tmp_path / "root"))
    folder = tmp_path / "root" / "shared" / "image"
    folder.mkdir(parents=True)
    for name in ("known.jpg", "unknown.jpg", "stale.jpg"):
        (folder / name).write_bytes(name.encode())
    store.write_manifest(
        ASSET,
        KEY,
        pl.DataFrame(
            {
                "target": ["shared/image/known.jpg", "shared/image/stale.jpg", "shared/image/gone.jpg"],
                "outcome": ["placed", "placed", "unavailable"],
                "bytes": [len(b"known.jpg"), 1, None],
                "sha256": ["recorded", "old", None],
                "error_class": [None, None, "http_404"],
                "error_message": [None, None, "404 Not Found"],
            }
        ),
    )
    targets = [
        "shared/image/known.jpg",  # present, its manifest row matches: its hash is not read again
        "shared/image/unknown.jpg",  # present, no manifest row: hashed
        "shared/image/stale.jpg",  # present, another size in the manifest: hashed
        "shared/image/gone.jpg",  # unavailable last time: not asked again
        "shared/image/new.jpg",  # to fetch
        "shared/../escape.jpg",  # refused
        "_encord_assets/manifests/x.jpg",  # refused
        "shared/image/new.jpg",  # a second row of a target: planned once
    ]
    plan = plan_partition(store, ASSET, KEY, rows_for(targets))
    assert plan.todo["target"].to_list() == ["shared/image/new.jpg"] and plan.todo["infos_row"].to_list() == [5]
    prior = {row["target"]: row for row in plan.prior.iter_rows(named=True)}
    assert set(prior) == set(targets) - {"shared/image/new.jpg"}
    assert prior["shared/image/known.jpg"]["sha256"] == "recorded"
    assert prior["shared/image/unknown.jpg"]["sha256"] == hashlib.sha256(b"unknown.jpg").hexdigest()
    assert prior["shared/image/stale.jpg"]["sha256"] == hashlib.sha256(b"stale.jpg").hexdigest()
    assert {prior[t]["outcome"] for t in targets[:3]} == {"already_present"}
    assert prior["shared/image/stale.jpg"]["bytes"] == len(b"stale.jpg")
    gone = prior["shared/image/gone.jpg"]
    assert (gone["outcome"], gone["error_class"], gone["error_message"]) == ("unavailable", "http_404", "404 Not Found")
    for refused in targets[5:7]:
        assert prior[refused]["outcome"] == "rejected" and prior[refused]["error_class"] == "unsafe_path"
        with pytest.raises(UnsafePath) as error:
            layout_key(refused)
        assert prior[refused]["error_message"] == str(error.value)

    retrying = DatasetStore(root=str(tmp_path / "root"), retry_unavailable=True)
    assert set(plan_partition(retrying, ASSET, KEY, rows_for(targets)).todo["target"]) == {"shared/image/new.jpg", "shared/image/gone.jpg"}


def test_a_partition_with_no_manifest_and_nothing_present_fetches_everything(tmp_path):
    store = DatasetStore(root=str(tmp_path / "root"))
    plan = plan_partition(store, ASSET, KEY, rows_for(["shared/image/a.jpg", "shared/image/b.jpg"]))
    assert plan.todo.height == 2 and plan.prior.height == 0


@pytest.mark.parametrize(
    "target",
    ["shared/image/a.jpg", "shared/image/ünï cödé.jpg", "shared/image/日本語.mp4", "shared/image/.hidden", "../x.jpg",
     "shared/../../x.jpg", "/etc/passwd", "shared//x", "", "shared/image/" + "x" * 256, "shared/image/nul\x00.jpg",
     "shared/image/tab\tname.jpg", "shared/image/a\\b.jpg", "shared/image/bad\ufffd.jpg", "_encord_assets/manifests/x"],
)
def test_the_column_check_refuses_exactly_what_layout_key_refuses(target):
    try:
        layout_key(target)
        expected = {}
    except UnsafePath as error:
        expected = {target: str(error)}
    assert unsafe_layout_keys(pl.Series([target])) == expected
