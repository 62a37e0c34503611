import subprocess
import sys

from encord_assets.definitions import defs
from encord_assets.sources.registry import SOURCES


def test_every_registry_source_has_an_asset_and_its_fetcher(instance):
    # resolved inside a live instance, as the webserver and the CLI resolve the code location
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    for spec in SOURCES:
        assert spec.name in keys
        assert spec.fetcher in defs.resources
    assert {"infos_image", "infos_video", "infos_audio", "infos_points", "infos_text", "captions"} <= keys


def test_dagster_cli_lists_the_assets():
    listed = subprocess.run(
        ["dagster", "asset", "list", "-m", "encord_assets.definitions"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "infos_image" in listed and "image_coco" in listed and "captions" in listed


def test_loading_the_definitions_imports_no_dataframe_library():
    """Every run process and *Reload definitions* load the code location: the fetchers', checks'
    and products' libraries are imported when a run uses them, not then."""
    probe = "import sys, encord_assets.definitions; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split())
    assert {"pandas", "polars", "pyarrow", "numpy", "PIL", "yt_dlp", "huggingface_hub"} & loaded == set()
