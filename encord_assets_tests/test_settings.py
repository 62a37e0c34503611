"""One module declares every setting: README agrees with it, resources take their defaults from it,
and no other module reads the environment for a setting of its own."""

import dataclasses
import re
from pathlib import Path

import pytest

import encord_assets
from encord_assets.infos.files import InfosDir
from encord_assets.operations.policy import Operations
from encord_assets.settings import REQUIRED, SETTINGS, readme_sections, readme_with_tables, resource_config
from encord_assets.sources.registry import fetcher_keys, fetcher_resource
from encord_assets.mirror.server import Link
from encord_assets.products.encord.urls import EncordUrls
from encord_assets.store import DatasetStore

README = Path(__file__).parents[1] / "README.md"
FETCHERS = {key: fetcher_resource(key) for key in fetcher_keys()}
RESOURCES = {**FETCHERS, "encord_urls": EncordUrls, "mirror_link": Link, "store": DatasetStore, "operations": Operations, "infos_dir": InfosDir}
# variables of other tools that the project passes on or sets for its own processes
NOT_OURS = {"PATH", "DAGSTER_HOME", "XDG_CACHE_HOME", "HF_HOME"}


def test_readme_tables_are_generated_from_the_settings():
    text = README.read_text()
    assert readme_with_tables(text) == text, "run `uv run encord-assets settings --readme README.md`"
    assert {setting.section for setting in SETTINGS} <= set(readme_sections(text))


def field_defaults(cls) -> dict:
    """Field name -> default of a pydantic resource or a dataclass."""
    if dataclasses.is_dataclass(cls):
        return {f.name: f.default for f in dataclasses.fields(cls)}
    return {name: info.default for name, info in cls.model_fields.items()}


def test_names_are_unique_and_targets_exist():
    names = [setting.name for setting in SETTINGS]
    assert len(names) == len(set(names))
    for setting in SETTINGS:
        for resource, field in setting.targets:
            assert field in field_defaults(RESOURCES[resource]), (setting.name, resource, field)


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.targets and s.default not in (None, REQUIRED)], ids=lambda s: s.name)
def test_resource_defaults_equal_the_declared_default(setting):
    for resource, field in setting.targets:
        assert field_defaults(RESOURCES[resource])[field] == setting.default, (resource, field)


def test_resources_are_built_from_the_settings(monkeypatch):
    monkeypatch.setenv("COCO_THREADS", "3")
    monkeypatch.setenv("ENCORD_RANGED_GAP_BYTES", "1234")
    monkeypatch.setenv("ENCORD_ZIP_METHOD", "stream")
    monkeypatch.setenv("YOUTUBE_SLEEP_SECONDS", "0.25")
    monkeypatch.setenv("ENCORD_RETRY_UNAVAILABLE", "on")
    monkeypatch.setenv("ROOT_DATA_PATH", "/tmp/x")
    # strings and integers stay EnvVars until Dagster resolves them, as when a run starts
    coco = FETCHERS["coco"](**resource_config("coco")).process_config_and_initialize()
    assert (coco.connections, coco.gap_bytes) == (3, 1234)
    for archive_reader in ("flickr30k", "vidgen", "openimages"):
        reader = FETCHERS[archive_reader](**resource_config(archive_reader)).process_config_and_initialize()
        assert (reader.gap_bytes, reader.method) == (1234, "stream"), archive_reader
    assert FETCHERS["youtube"](**resource_config("youtube")).sleep_seconds == 0.25
    store = DatasetStore(**resource_config("store")).process_config_and_initialize()
    assert (store.root, store.retry_unavailable) == ("/tmp/x", True)


def test_no_module_reads_a_setting_of_its_own():
    # reads, not writes: `os.environ["X"] = ...` sets a variable for child processes
    reads = re.compile(r"os\.environ\.get\(\s*['\"]([A-Z0-9_]+)|os\.environ\[\s*['\"]([A-Z0-9_]+)['\"]\](?!\s*=[^=])|getenv\(\s*['\"]([A-Z0-9_]+)")
    package = Path(encord_assets.__file__).parent
    found = {
        name
        for path in package.rglob("*.py")
        if path.name != "settings.py"
        for match in reads.finditer(path.read_text())
        for name in match.groups()
        if name
    }
    assert found <= NOT_OURS, f"read outside encord_assets/settings.py: {sorted(found - NOT_OURS)}"
