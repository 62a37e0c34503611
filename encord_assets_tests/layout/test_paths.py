import os

import pytest

from encord_assets.layout.paths import UnsafePath, check_component, inside_root


@pytest.mark.parametrize("name", ["", "..", ".", "a/b", "a\\b", "nul\x00", "x" * 256, "tab\tname"])
def test_unsafe_components_are_refused(name):
    with pytest.raises(UnsafePath):
        check_component(name)


def test_plain_names_pass():
    assert check_component("4Df6eeR64Ow_14.mp4") == "4Df6eeR64Ow_14.mp4"
    assert check_component("n01440764_10026.JPEG") == "n01440764_10026.JPEG"


@pytest.mark.parametrize("relative", ["../x.jpg", "shared/../../x.jpg", "/etc/passwd", "shared//x", "_encord_assets/manifests/x"])
def test_targets_outside_the_layout_are_refused(tmp_path, relative):
    with pytest.raises(UnsafePath):
        inside_root(tmp_path, relative)


def test_a_symlink_inside_root_cannot_lead_outside(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "shared").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "shared" / "image")
    with pytest.raises(UnsafePath):
        inside_root(root, "shared/image/a.jpg")
    assert inside_root(root, "shared/video/a.mp4") == root.resolve() / "shared" / "video" / "a.mp4"
