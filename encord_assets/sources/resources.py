"""The fetcher resources named by the registry, configured from environment variables."""

from encord_assets.settings import setting
from encord_assets.sources.coco import CocoImages
from encord_assets.sources.youtube import DEFAULT_FORMAT, DEFAULT_URL_TEMPLATE, YoutubeClips
from encord_assets.sources.flickr30k import Flickr30kZip
from encord_assets.sources.hf import DEFAULT_ENDPOINT
from encord_assets.sources.imagenet import ImageNetParquet
from encord_assets.sources.openimages import LABEL_TYPES, SPLITS, OpenImages
from encord_assets.sources.openshape import REPO_ID as OPENSHAPE_REPO_ID
from encord_assets.sources.openshape import OpenShapePoints
from encord_assets.sources.url_images import UrlImages
from encord_assets.sources.vidgen import VidGenZips


def fetcher_resources() -> dict:
    return {
        "coco": CocoImages(
            base_url=setting("COCO_BASE_URL", "http://images.cocodataset.org"),
            method=setting("COCO_METHOD", "auto"),
            threads=setting("COCO_THREADS", 8),
            timeout_seconds=setting("COCO_TIMEOUT_SECONDS", 60.0),
            attempts=setting("COCO_ATTEMPTS", 4),
            backoff_seconds=setting("COCO_BACKOFF_SECONDS", 0.5),
        ),
        "youtube": YoutubeClips(
            url_template=setting("YOUTUBE_URL_TEMPLATE", DEFAULT_URL_TEMPLATE),
            cookies_file=setting("YOUTUBE_COOKIES_FILE", ""),
            sleep_seconds=setting("YOUTUBE_SLEEP_SECONDS", 1.0),
            socket_timeout_seconds=setting("YOUTUBE_SOCKET_TIMEOUT", 30.0),
            format=setting("YOUTUBE_FORMAT", DEFAULT_FORMAT),
            threads=setting("YOUTUBE_THREADS", 4),
            attempts=setting("YOUTUBE_ATTEMPTS", 4),
            backoff_seconds=setting("YOUTUBE_BACKOFF_SECONDS", 2.0),
        ),
        **{
            key: resource(
                endpoint=setting("HF_ENDPOINT", DEFAULT_ENDPOINT),
                token=setting("HF_TOKEN", None),
                revision=setting(f"{key.upper()}_REVISION", "main"),
            )
            for key, resource in (("imagenet", ImageNetParquet), ("flickr30k", Flickr30kZip), ("vidgen", VidGenZips))
        },
        "url_images": UrlImages(
            processes=setting("URL_IMAGES_PROCESSES", 2),
            threads=setting("URL_IMAGES_THREADS", 32),
            timeout_seconds=setting("URL_IMAGES_TIMEOUT", 10),
            retries=setting("URL_IMAGES_RETRIES", 1),
            user_agent=setting("URL_IMAGES_USER_AGENT", "encord-assets"),
            url_rewrite=setting("URL_IMAGES_REWRITE", ""),
        ),
        "openimages": OpenImages(
            annotations_url=setting("OPENIMAGES_ANNOTATIONS_URL", "https://storage.googleapis.com/openimages"),
            images_url=setting("OPENIMAGES_IMAGES_URL", "https://open-images-dataset.s3.amazonaws.com"),
            classes=setting("OPENIMAGES_CLASSES", ""),
            splits=setting("OPENIMAGES_SPLITS", ",".join(SPLITS)),
            label_types=setting("OPENIMAGES_LABEL_TYPES", ",".join(LABEL_TYPES)),
            max_samples=setting("OPENIMAGES_MAX_SAMPLES", 0),
            seed=setting("OPENIMAGES_SEED", 0),
            folder=setting("OPENIMAGES_FOLDER", "OID_V6"),
            threads=setting("OPENIMAGES_THREADS", 8),
            timeout_seconds=setting("OPENIMAGES_TIMEOUT_SECONDS", 60.0),
            attempts=setting("OPENIMAGES_ATTEMPTS", 4),
        ),
        "openshape": OpenShapePoints(
            repo_id=setting("OPENSHAPE_REPO", OPENSHAPE_REPO_ID),
            revision=setting("OPENSHAPE_REVISION", "main"),
            endpoint=setting("HF_ENDPOINT", DEFAULT_ENDPOINT),
            token=setting("HF_TOKEN", None),
        ),
    }
