"""Settings shared by every asset: where the data goes and where the infos come from."""

import os

import dagster as dg

from encord_assets.infos.files import SAMPLE_INFOS_DIR
from encord_assets.layout.paths import DEFAULT_AUDIO_DIR
from encord_assets.products.encord.urls import EncordUrls
from encord_assets.store import DatasetStore


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


class InfosDir(dg.ConfigurableResource):
    """A folder shaped like E-MM1's `datasets/` (default: the sample bundled with the package)."""

    path: str = str(SAMPLE_INFOS_DIR)


def default_store() -> DatasetStore:
    return DatasetStore(
        root=dg.EnvVar("ROOT_DATA_PATH"),
        audio_dir=setting("ENCORD_AUDIO_DIR", DEFAULT_AUDIO_DIR),
        extra_save_folders=setting("ENCORD_EXTRA_SAVE_FOLDERS", ""),
        retry_unavailable=setting("ENCORD_RETRY_UNAVAILABLE", False),
        scratch_dir=setting("ENCORD_SCRATCH_DIR", ""),
        upload_part_bytes=setting("ENCORD_UPLOAD_PART_BYTES", 64 << 20),
        upload_concurrency=setting("ENCORD_UPLOAD_CONCURRENCY", 16),
        upload_attempts=setting("ENCORD_UPLOAD_ATTEMPTS", 8),
    )


def default_encord_urls() -> EncordUrls:
    """Object URLs of the Encord import manifests (`encord_manifest` asset)."""
    return EncordUrls(
        provider=setting("ENCORD_URL_PROVIDER", "aws"),
        region=setting("ENCORD_URL_REGION", setting("AWS_REGION", "")),
        azure_account=setting("ENCORD_AZURE_ACCOUNT", ""),
        endpoint_url=setting("AWS_ENDPOINT_URL", ""),
        object_url_base=setting("ENCORD_OBJECT_URL_BASE", ""),
    )
