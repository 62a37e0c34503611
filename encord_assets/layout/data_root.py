"""The DataRoot resource: ROOT of the layout and the layout's own options."""

from pathlib import Path

import dagster as dg

from encord_assets.layout.paths import KNOWN_SAVE_FOLDERS
from encord_assets.settings import DEFAULT_AUDIO_DIR, resource_config


class DataRoot(dg.ConfigurableResource):
    """ROOT of the layout, ROOT/<save_folder>/<dir>/<file_name>."""

    root: str
    audio_dir: str = DEFAULT_AUDIO_DIR
    # comma-separated save_folder values accepted beyond E-MM1's own
    extra_save_folders: str = ""
    # re-try rows an earlier run found permanently unavailable (404, removed video, ...)
    retry_unavailable: bool = False

    @property
    def root_path(self) -> Path:
        return Path(self.root).expanduser().absolute()

    @property
    def save_folders(self) -> tuple[str, ...]:
        extra = tuple(f.strip() for f in self.extra_save_folders.split(",") if f.strip())
        return KNOWN_SAVE_FOLDERS + extra


def default_data_root() -> DataRoot:
    return DataRoot(**resource_config("data_root"))
