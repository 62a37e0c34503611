"""Build the mirror's content for normalized infos, source by source from the registry."""

from pathlib import Path

import polars as pl

from encord_assets.mirror.server import Mirror
from encord_assets.sources.registry import SOURCES, fetcher_keys, upstream_emulation


def infos_fetcher_keys() -> list[str]:
    return sorted({spec.fetcher for spec in SOURCES if spec.from_infos})


def build_content(rows: pl.DataFrame, content_dir: Path) -> None:
    """Synthesize upstream files for every normalized row (all splits, all sources); sources whose rows
    do not come from infos are built from their own tables (Open Images: mirror/openimages.py)."""
    for fetcher in infos_fetcher_keys():
        names = [spec.name for spec in SOURCES if spec.fetcher == fetcher]
        upstream_emulation(fetcher).build(rows.filter(pl.col("source").is_in(names)), content_dir)


def attach(mirror: Mirror) -> dict[str, str]:
    """Install upstream routes on `mirror`; return the settings that point every source at it."""
    settings = {}
    for fetcher in fetcher_keys():
        upstream = upstream_emulation(fetcher)
        if hasattr(upstream, "routes"):
            upstream.routes(mirror)
        settings |= upstream.env(mirror)
    return settings
