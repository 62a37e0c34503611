import os

import pytest

import polars as pl

from encord_assets.layout.paths import PLAIN_NAME, UnsafePath, check_component, layout_key, unsafe_component_reason
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
    staged = []
    for target in ("shared/image/a.jpg", "shared/video/a.mp4"):
        path = tmp_path / f"{len(staged)}.part"
        path.write_bytes(b"x")
        staged.append({"staged_path": str(path), "target": target, "bytes": 1, "sha256": "0" * 64})
    refused, placed = store.place_all(staged)
    assert isinstance(refused, UnsafePath) and not list(outside.iterdir())
    assert placed == ("placed", 1) and (root / "shared" / "video" / "a.mp4").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["a.jpg", "n01440764_10026.JPEG", "-x_y=1,2@3+4.mp4", "a" * 255, ".hidden"])
def test_names_the_fast_path_accepts_pass_every_rule(name):
    assert PLAIN_NAME.fullmatch(name)
    assert pl.select(unsafe_component_reason(pl.lit(name, dtype=pl.String))).item() is None
