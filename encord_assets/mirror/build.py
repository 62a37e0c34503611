"""Build the mirror's content for normalized infos, source by source from the registry."""

from pathlib import Path

import polars as pl

from encord_assets.mirror import coco, flickr30k, imagenet, openimages, openshape, url_images, vidgen, youtube
from encord_assets.mirror.server import Mirror
from encord_assets.sources.registry import SOURCES

# fetcher resource key -> the mirror module that emulates its upstream (build, env, routes)
UPSTREAMS = {
    "coco": coco,
    "youtube": youtube,
    "imagenet": imagenet,
    "flickr30k": flickr30k,
    "vidgen": vidgen,
    "url_images": url_images,
    "openshape": openshape,
}


def build_content(rows: pl.DataFrame, content_dir: Path) -> None:
    """Synthesize upstream files for every normalized row (all splits, all sources); sources whose rows
    do not come from infos are built from their own tables (Open Images: mirror/openimages.py)."""
    for fetcher in sorted({spec.fetcher for spec in SOURCES if spec.from_infos}):
        names = [spec.name for spec in SOURCES if spec.fetcher == fetcher]
        UPSTREAMS[fetcher].build(rows.filter(pl.col("source").is_in(names)), content_dir)


def attach(mirror: Mirror) -> dict[str, str]:
    """Install upstream routes on `mirror`; return the settings that point every source at it."""
    settings = {}
    for fetcher in sorted({spec.fetcher for spec in SOURCES if spec.from_infos}):
        upstream = UPSTREAMS[fetcher]
        if hasattr(upstream, "routes"):
            upstream.routes(mirror)
        settings |= upstream.env(mirror)
    return settings | openimages.env(mirror)
