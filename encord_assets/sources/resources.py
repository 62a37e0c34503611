"""The fetcher resources the registry names, configured from the declared settings."""

from encord_assets.settings import resource_config
from encord_assets.sources.registry import fetcher_keys, fetcher_resource


def fetcher_resources() -> dict:
    return {key: fetcher_resource(key)(**resource_config(key)) for key in fetcher_keys()}
