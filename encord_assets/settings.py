"""Settings shared by every asset: where the data goes and where the infos come from."""

import os
from pathlib import Path

import dagster as dg

from encord_assets.infos.files import SAMPLE_INFOS_DIR
from encord_assets.infos.normalize import DEFAULT_MAX_CLIP_SECONDS
from encord_assets.layout.paths import DEFAULT_AUDIO_DIR, KNOWN_SAVE_FOLDERS


def setting(name: str, default):
    """The value of environment variable `name`, typed like `default`; the default when unset.

    Strings and integers stay `dg.EnvVar`s (resolved when a run starts, and shown as such in
    the UI); Dagster has no float or bool EnvVar, so those are parsed when definitions load.
    """
    if name not in os.environ:
        return default
    if isinstance(default, bool):
        return os.environ[name].strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return dg.EnvVar.int(name)
    if isinstance(default, float):
        return float(os.environ[name])
    return dg.EnvVar(name)


class DataRoot(dg.ConfigurableResource):
    """ROOT of the layout, ROOT/<save_folder>/<dir>/<file_name>."""

    root: str
    audio_dir: str = DEFAULT_AUDIO_DIR
    # comma-separated save_folder values accepted beyond E-MM1's own
    extra_save_folders: str = ""
    # re-try rows an earlier run found permanently unavailable (404, removed video, ...)
    retry_unavailable: bool = False
    # clip ranges (end_time - start_time) longer than this are rejected as broken rows
    max_clip_seconds: float = DEFAULT_MAX_CLIP_SECONDS

    @property
    def root_path(self) -> Path:
        return Path(self.root).expanduser().absolute()

    @property
    def save_folders(self) -> tuple[str, ...]:
        extra = tuple(f.strip() for f in self.extra_save_folders.split(",") if f.strip())
        return KNOWN_SAVE_FOLDERS + extra


class InfosDir(dg.ConfigurableResource):
    """A folder shaped like E-MM1's `datasets/` (default: the sample bundled with the package)."""

    path: str = str(SAMPLE_INFOS_DIR)


def default_data_root() -> DataRoot:
    return DataRoot(
        root=dg.EnvVar("ROOT_DATA_PATH"),
        audio_dir=setting("ENCORD_AUDIO_DIR", DEFAULT_AUDIO_DIR),
        extra_save_folders=setting("ENCORD_EXTRA_SAVE_FOLDERS", ""),
        retry_unavailable=setting("ENCORD_RETRY_UNAVAILABLE", False),
        max_clip_seconds=setting("ENCORD_MAX_CLIP_SECONDS", DEFAULT_MAX_CLIP_SECONDS),
    )
