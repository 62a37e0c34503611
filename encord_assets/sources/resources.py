"""The fetcher resources named by the registry, configured from the declared settings."""

from encord_assets.settings import resource_config
from encord_assets.sources.coco import CocoImages
from encord_assets.sources.flickr30k import Flickr30kZip
from encord_assets.sources.imagenet import ImageNetParquet
from encord_assets.sources.openshape import OpenShapePoints
from encord_assets.sources.url_images import UrlImages
from encord_assets.sources.vidgen import VidGenZips
from encord_assets.sources.youtube import YoutubeClips

FETCHERS = {
    "coco": CocoImages,
    "youtube": YoutubeClips,
    "imagenet": ImageNetParquet,
    "flickr30k": Flickr30kZip,
    "vidgen": VidGenZips,
    "url_images": UrlImages,
    "openshape": OpenShapePoints,
}


def fetcher_resources() -> dict:
    return {key: resource(**resource_config(key)) for key, resource in FETCHERS.items()}
