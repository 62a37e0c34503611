import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

import polars as pl

from encord_assets.layout.io_manager import place_staged
from encord_assets.layout.paths import (
    PLAIN_NAME,
    UnsafePath,
    check_component,
    layout_key,
    unsafe_component,
    unsafe_component_reason,
)
from encord_assets.ledger import RESULT_SCHEMA
from encord_assets.store import DatasetStore


@pytest.mark.parametrize("name", ["", "..", ".", "a/b", "a\\b", "nul\x00", "x" * 256, "tab\tname"])
def test_unsafe_components_are_refused(name):
    with pytest.raises(UnsafePath):
        check_component(name)


def test_plain_names_pass():
    assert check_component("4Df6eeR64Ow_14.mp4") == "4Df6eeR64Ow_14.mp4"
    assert check_component("n01440764_10026.JPEG") == "n01440764_10026.JPEG"


@pytest.mark.parametrize("relative", ["../x.jpg", "shared/../../x.jpg", "/etc/passwd", "shared//x", "_encord_assets/manifests/x"])
def test_targets_outside_the_layout_are_refused(relative):
    with pytest.raises(UnsafePath):
        layout_key(relative)


def test_a_symlink_inside_root_cannot_lead_outside(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "shared").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "shared" / "image")
    store = DatasetStore(root=str(root))
    (root / "shared" / "video").mkdir()
    os.symlink(outside / "b.mp4", root / "shared" / "video" / "b.mp4")
    staged = []
    for target in ("shared/image/a.jpg", "shared/video/a.mp4", "shared/image/b.jpg", "shared/video/b.mp4"):
        path = tmp_path / f"{len(staged)}.part"
        path.write_bytes(b"x")
        staged.append({"staged_path": str(path), "target": target, "bytes": 1, "sha256": "0" * 64})
    refused, placed, refused_too, over_link = store.place_all(staged)
    assert isinstance(refused, UnsafePath) and isinstance(refused_too, UnsafePath) and not list(outside.iterdir())
    assert placed == ("placed", 1) and (root / "shared" / "video" / "a.mp4").read_bytes() == b"x"
    # a symlink at a final path is replaced by the file, never written through
    assert over_link == ("placed", 1) and not (root / "shared" / "video" / "b.mp4").is_symlink()


def test_staged_files_are_checked_before_placing(tmp_path):
    store = DatasetStore(root=str(tmp_path / "root"))
    good, short = tmp_path / "good.part", tmp_path / "short.part"
    good.write_bytes(b"jpeg bytes")
    short.write_bytes(b"cut")
    rows = [
        ("shared/image/good.jpg", good, 10),
        ("shared/image/short.jpg", short, 10),
        ("shared/image/lost.jpg", tmp_path / "lost.part", None),
        ("shared/../x.jpg", good, None),
    ]
    fetched = pl.DataFrame(
        [{"target": t, "outcome": "staged", "staged_path": str(p), "expected_size": n} for t, p, n in rows], schema=RESULT_SCHEMA
    )
    results = {row["target"]: (row["outcome"], row["error_class"]) for row in place_staged(store, fetched)[0]}
    assert results == {
        "shared/image/good.jpg": ("placed", None),
        "shared/image/short.jpg": ("failed", "size_mismatch"),
        "shared/image/lost.jpg": ("failed", "staging_lost"),
        "shared/../x.jpg": ("rejected", "unsafe_path"),
    }
    assert (tmp_path / "root/shared/image/good.jpg").read_bytes() == b"jpeg bytes" and not (tmp_path / "x.jpg").exists()


@pytest.mark.parametrize("name", ["a.jpg", "n01440764_10026.JPEG", "-x_y=1,2@3+4.mp4", "a" * 255, ".hidden"])
def test_names_the_fast_path_accepts_pass_every_rule(name):
    assert PLAIN_NAME.fullmatch(name)
    assert pl.select(unsafe_component_reason(pl.lit(name, dtype=pl.String))).item() is None


# the characters every rule looks at, among ordinary ones, so that hostile names are common
NAME_CHARACTERS = st.sampled_from(["a", "é", " ", "\t", "\u00a0", "\u3000", "\u2028", "\x00", "\x01", "\x1f", "\x7f", "/", "\\", ".", "\ufffd", "x" * 120])


@given(st.lists(st.one_of(st.none(), st.lists(NAME_CHARACTERS, max_size=6).map("".join), st.text(max_size=8)), min_size=1, max_size=50))
def test_the_boolean_form_of_the_component_rules_refuses_exactly_what_the_reasons_do(values):
    frame = pl.DataFrame({"value": values}, schema={"value": pl.String})
    judged = frame.select(
        reason=unsafe_component_reason(pl.col("value")).is_not_null(), refused=unsafe_component(pl.col("value"))
    )
    assert judged["reason"].to_list() == judged["refused"].to_list(), frame
