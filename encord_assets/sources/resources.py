"""The fetcher resources named by the registry, configured from environment variables."""

from encord_assets.settings import setting
from encord_assets.sources.coco import CocoImages
from encord_assets.sources.flickr30k import Flickr30kZip
from encord_assets.sources.hf import DEFAULT_ENDPOINT
from encord_assets.sources.imagenet import ImageNetParquet
from encord_assets.sources.vidgen import VidGenZips


def fetcher_resources() -> dict:
    return {
        "coco": CocoImages(
            base_url=setting("COCO_BASE_URL", "http://images.cocodataset.org"),
            method=setting("COCO_METHOD", "auto"),
        ),
        **{
            key: resource(
                endpoint=setting("HF_ENDPOINT", DEFAULT_ENDPOINT),
                token=setting("HF_TOKEN", None),
                revision=setting(f"{key.upper()}_REVISION", "main"),
            )
            for key, resource in (("imagenet", ImageNetParquet), ("flickr30k", Flickr30kZip), ("vidgen", VidGenZips))
        },
    }
