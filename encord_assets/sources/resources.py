"""The fetcher resources named by the registry, configured from environment variables."""

from encord_assets.settings import setting
from encord_assets.sources.coco import CocoImages


def fetcher_resources() -> dict:
    return {
        "coco": CocoImages(
            base_url=setting("COCO_BASE_URL", "http://images.cocodataset.org"),
            method=setting("COCO_METHOD", "auto"),
            threads=setting("COCO_THREADS", 8),
        ),
    }
