"""Every environment variable the project reads, declared once: name, default, meaning, and the
resource fields it configures. Resources are built from these declarations, README's
configuration tables are generated from them (`encord-assets settings --readme README.md`),
and the tests clear exactly these names from their environment.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

# Defaults that code outside this module names too.
# Audio of the E-MM1 splits shares files with video clips, so it lives in video/.
DEFAULT_AUDIO_DIR = "video"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_YOUTUBE_URL_TEMPLATE = "https://www.youtube.com/watch?v={youtube_id}"
# mp4 video + m4a audio merge into an mp4 without re-muxing surprises; anything else as a fallback
DEFAULT_YOUTUBE_FORMAT = "bv*[ext=mp4]+ba[ext=m4a]/b[ext=mp4]/bv*+ba/b"
OPENSHAPE_REPO_ID = "OpenShape/openshape-training-data"
# E-MM1 clips last seconds; a range of more than an hour is a broken row, not a clip to cut.
DEFAULT_MAX_CLIP_SECONDS = 3600.0
HF_REVISIONED = ("imagenet", "flickr30k", "vidgen")
# fetchers that read zip members by ranges (sources/ranged_reads.py), besides COCO (its own method and threads)
ZIP_READERS = ("flickr30k", "vidgen", "openimages")
REQUIRED = object()


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    meaning: str
    section: str
    # (resource key, field) pairs this setting configures
    targets: tuple[tuple[str, str], ...] = ()
    # how README shows the default when the value itself says little
    shown_default: str | None = None

    @property
    def kind(self) -> type:
        return str if self.default is None or self.default is REQUIRED else type(self.default)

    def configured(self):
        """The value for a resource field: strings and integers stay `dg.EnvVar`s (resolved when a
        run starts, and shown as such in the UI); Dagster has no float or bool EnvVar, so those are
        parsed when definitions load. Unset: the default."""
        if self.default is REQUIRED:
            return dg.EnvVar(self.name)
        if self.name not in os.environ:
            return self.default
        if self.kind is int:
            return dg.EnvVar.int(self.name)
        if self.kind in (float, bool):
            return self.read()
        return dg.EnvVar(self.name)

    @property
    def is_set(self) -> bool:
        return self.name in os.environ

    def read(self):
        """The value now (for what is fixed when definitions load: intervals, default statuses, crons)."""
        raw = os.environ.get(self.name)
        if raw is None:
            if self.default is REQUIRED:
                raise KeyError(f"{self.name} is required")
            return self.default
        if self.kind is bool:
            return raw.strip().lower() in ("1", "true", "yes", "on")
        return self.kind(raw)

    def readme_default(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is REQUIRED:
            return "required"
        if self.default is None or self.default == "":
            return "empty"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        return f"`{self.default}`"


def _per_source(name: str, default, meaning: str, section: str, field: str, sources) -> Setting:
    return Setting(name, default, meaning, section, targets=tuple((source, field) for source in sources))


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "ROOT_DATA_PATH", REQUIRED, "ROOT of the layout: a folder, or `s3://BUCKET/PREFIX` (see *ROOT on object storage*)", "core", (("store", "root"),)),
    Setting(
        "ENCORD_INFOS_DIR", None, "folder shaped like E-MM1's `datasets/`", "core", (("infos_dir", "path"),),
        shown_default="bundled sample",
    ),
    Setting("ENCORD_AUDIO_DIR", DEFAULT_AUDIO_DIR, "folder for E-MM1 audio clips", "core", (("store", "audio_dir"),)),
    Setting(
        "ENCORD_EXTRA_SAVE_FOLDERS", "", "comma-separated extra accepted save_folder values", "core",
        (("store", "extra_save_folders"),),
    ),
    Setting(
        "ENCORD_RETRY_UNAVAILABLE", False, "re-try rows recorded as permanently unavailable", "core",
        (("store", "retry_unavailable"),),
    ),
    Setting(
        "ENCORD_MAX_CLIP_SECONDS", DEFAULT_MAX_CLIP_SECONDS,
        "longest accepted clip (`end_time - start_time`); longer rows are rejected", "core", (("store", "max_clip_seconds"),),
    ),
    # Read by the team deployments' dagster.yaml (deploy/), not by the code location.
    Setting(
        "DAGSTER_POSTGRES_URL", None,
        "team instance (`deploy/*/dagster.yaml`): `postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB` (secret)", "deploy",
        shown_default="-",
    ),
    Setting("DAGSTER_CELERY_BROKER_URL", None, "Celery runs (`deploy/celery/`): Redis URL of the broker", "deploy", shown_default="-"),
    Setting(
        "DAGSTER_CELERY_BACKEND_URL", None, "Celery runs (`deploy/celery/`): Redis URL of the task states", "deploy",
        shown_default="-",
    ),
    Setting(
        "ENCORD_SCRATCH_DIR", "", "object-storage ROOT: local folder for staging and cached tables", "store",
        (("store", "scratch_dir"),), shown_default="`<temp dir>/encord_assets_scratch`",
    ),
    Setting(
        "ENCORD_UPLOAD_PART_BYTES", 64 << 20, "object-storage ROOT: multipart part size (files of two parts or more)",
        "store", (("store", "upload_part_bytes"),), shown_default="`67108864` (64 MiB)",
    ),
    Setting(
        "ENCORD_UPLOAD_CONCURRENCY", 16, "object-storage ROOT: uploads at once when a partition is placed", "store",
        (("store", "upload_concurrency"),),
    ),
    Setting(
        "ENCORD_UPLOAD_ATTEMPTS", 8, "object-storage ROOT: attempts per request (botocore standard retry mode)", "store",
        (("store", "upload_attempts"),),
    ),
    # Read by botocore itself (the standard AWS way); declared so the tables and the tests' scrub know them.
    Setting(
        "AWS_ENDPOINT_URL", None, "S3-compatible endpoint (any service but AWS itself)", "store",
        (("encord_urls", "endpoint_url"),), shown_default="AWS",
    ),
    Setting("AWS_REGION", None, "bucket region", "store", (("store", "region"), ("encord_urls", "region")), shown_default="botocore's"),
    Setting("AWS_ACCESS_KEY_ID", None, "access key (secret: never logged or recorded)", "store", shown_default="botocore's chain"),
    Setting("AWS_SECRET_ACCESS_KEY", None, "secret key (secret: never logged or recorded)", "store", shown_default="botocore's chain"),
    Setting("AWS_PROFILE", None, "profile in `~/.aws` instead of keys", "store", shown_default="none"),
    Setting(
        "ENCORD_MIRROR_BANDWIDTH_BYTES", 0.0,
        "`encord-assets mirror`: bandwidth of the emulated link in bytes/s, shared by all connections (0: unlimited)",
        "mirror", (("mirror_link", "bandwidth_bytes_per_second"),),
    ),
    Setting(
        "ENCORD_MIRROR_RTT_SECONDS", 0.0, "`encord-assets mirror`: round trip added before each answer and to each new connection",
        "mirror", (("mirror_link", "rtt_seconds"),),
    ),
    Setting(
        "ENCORD_URL_PROVIDER", "aws", "object URL form for an `s3://` ROOT: `aws`, `gcp`, `azure`, `otc`, `endpoint`",
        "encord", (("encord_urls", "provider"),),
    ),
    # after AWS_REGION, so that it wins when both are set
    Setting(
        "ENCORD_URL_REGION", None, "bucket region in `aws` and `otc` URLs", "encord", (("encord_urls", "region"),),
        shown_default="`AWS_REGION`",
    ),
    Setting("ENCORD_AZURE_ACCOUNT", "", "storage account in `azure` URLs", "encord", (("encord_urls", "azure_account"),)),
    Setting(
        "ENCORD_OBJECT_URL_BASE", "", "URL that ROOT was uploaded to (a local ROOT; overrides the provider)", "encord",
        (("encord_urls", "object_url_base"),),
    ),
    _per_source(
        "ENCORD_RANGED_CONNECTIONS", 8,
        "parallel connections of one partition's ranged reads (Flickr30k, VidGen-1M; ImageNet: parquet "
        "files read at once; COCO: `COCO_THREADS`; Open Images masks: `OPENIMAGES_CONNECTIONS`)",
        "ranged", "connections", ("imagenet", "flickr30k", "vidgen"),
    ),
    _per_source(
        "ENCORD_RANGED_GAP_BYTES", 64_000,
        "archive members closer than this are read in one range (about a round trip's worth of one connection's share of the link)",
        "ranged", "gap_bytes", ("coco", *ZIP_READERS),
    ),
    _per_source(
        "ENCORD_LINK_BYTES_PER_SECOND", 25_000_000,
        "bandwidth `auto` assumes when it weighs ranges, streaming and single GETs (bytes/s; 200 Mbit/s)", "ranged",
        "link_bytes_per_second", ("coco", *ZIP_READERS),
    ),
    _per_source(
        "ENCORD_ZIP_METHOD", "auto",
        "how zips are read (Flickr30k, VidGen-1M, Open Images masks): `auto` (chosen per archive), `ranges` (coalesced, "
        "parallel) or `stream` (one sequential read)", "ranged", "method", ZIP_READERS,
    ),
    Setting("COCO_BASE_URL", "http://images.cocodataset.org", "COCO image host", "coco", (("coco", "base_url"),)),
    Setting(
        "COCO_METHOD", "auto",
        "`auto` (chosen per partition), `images` (one GET per image), `ranges` (coalesced Range reads of train2017.zip) or "
        "`stream` (one sequential read of it)", "coco", (("coco", "method"),),
    ),
    Setting("COCO_THREADS", 8, "parallel connections per partition (single GETs or zip ranges)", "coco", (("coco", "connections"),)),
    Setting("COCO_TIMEOUT_SECONDS", 60.0, "per-request timeout", "coco", (("coco", "timeout_seconds"),)),
    Setting("COCO_ATTEMPTS", 4, "tries per request for transient errors", "coco", (("coco", "attempts"),)),
    Setting("COCO_BACKOFF_SECONDS", 0.5, "first backoff between tries (doubles)", "coco", (("coco", "backoff_seconds"),)),
    _per_source(
        "HF_ENDPOINT", DEFAULT_HF_ENDPOINT, "Hugging Face Hub endpoint (ImageNet, Flickr30k, VidGen-1M, OpenShape)",
        "huggingface", "endpoint", (*HF_REVISIONED, "openshape"),
    ),
    _per_source(
        "HF_TOKEN", None, "Hugging Face token (secret: sent to `HF_ENDPOINT` only, never logged or stored)",
        "huggingface", "token", (*HF_REVISIONED, "openshape"),
    ),
    *(
        Setting(
            f"{source.upper()}_REVISION", "main",
            f"branch, tag or commit of the {label} repository (a commit makes runs reproducible)", "huggingface",
            ((source, "revision"),),
        )
        for source, label in zip(HF_REVISIONED, ("ImageNet", "Flickr30k", "VidGen-1M"))
    ),
    Setting(
        "URL_IMAGES_PROCESSES", 2, "img2dataset processes per partition (URL images: Google Conceptual Captions)",
        "url_images", (("url_images", "processes"),),
    ),
    Setting("URL_IMAGES_THREADS", 32, "img2dataset download threads per process", "url_images", (("url_images", "threads"),)),
    Setting("URL_IMAGES_TIMEOUT", 10, "seconds before an image request times out", "url_images", (("url_images", "timeout_seconds"),)),
    Setting("URL_IMAGES_RETRIES", 1, "img2dataset's own immediate retries per URL", "url_images", (("url_images", "retries"),)),
    Setting(
        "URL_IMAGES_USER_AGENT", "encord-assets",
        "token in img2dataset's User-Agent (`... (compatible; TOKEN; +https://github.com/rom1504/img2dataset)`)",
        "url_images", (("url_images", "user_agent"),),
    ),
    Setting(
        "URL_IMAGES_REWRITE", "",
        "URL prefix rewrites `FROM=>TO`, separated by spaces, first match wins (route URLs through your cache)",
        "url_images", (("url_images", "url_rewrite"),),
    ),
    Setting(
        "URL_IMAGES_ALLOWED_NETWORKS", "",
        "networks (CIDR, comma-separated) URL images may reach besides public addresses, e.g. `127.0.0.1/32` for a "
        "local mirror or `10.0.0.0/8` for a cache", "url_images", (("url_images", "allowed_networks"),),
    ),
    Setting(
        "OPENSHAPE_REPO", OPENSHAPE_REPO_ID, "Hugging Face dataset holding OpenShape's point clouds", "openshape",
        (("openshape", "repo_id"),),
    ),
    Setting("OPENSHAPE_REVISION", "main", "branch, tag or commit of that repository", "openshape", (("openshape", "revision"),)),
    Setting("OPENIMAGES_CLASSES", "", "Open Images classes: comma-separated display names or MIDs", "openimages", (("openimages", "classes"),), shown_default="none"),
    Setting(
        "OPENIMAGES_SPLITS", "train,validation,test", "Open Images splits: `train`, `validation`, `test`", "openimages",
        (("openimages", "splits"),),
    ),
    Setting(
        "OPENIMAGES_LABEL_TYPES", "images,boxes,masks,labels", "Open Images label types: `images`, `boxes`, `masks`, `labels`",
        "openimages", (("openimages", "label_types"),),
    ),
    Setting("OPENIMAGES_MAX_SAMPLES", 0, "images per class and split (0: all)", "openimages", (("openimages", "max_samples"),)),
    Setting("OPENIMAGES_SEED", 0, "seed of the choice of images", "openimages", (("openimages", "seed"),)),
    Setting(
        "OPENIMAGES_ANNOTATIONS_URL", "https://storage.googleapis.com/openimages", "annotation CSVs and mask zips",
        "openimages", (("openimages", "annotations_url"),),
    ),
    Setting(
        "OPENIMAGES_IMAGES_URL", "https://open-images-dataset.s3.amazonaws.com", "images, `<split>/<ImageID>.jpg`",
        "openimages", (("openimages", "images_url"),),
    ),
    Setting("OPENIMAGES_FOLDER", "OID_V6", "the folder under ROOT", "openimages", (("openimages", "folder"),)),
    Setting("OPENIMAGES_THREADS", 8, "image GETs at once", "openimages", (("openimages", "threads"),)),
    Setting(
        "OPENIMAGES_CONNECTIONS", 32, "parallel connections of a partition's mask reads (members of a few KB: round trips, not bytes, bound them)",
        "openimages", (("openimages", "connections"),),
    ),
    Setting("OPENIMAGES_TIMEOUT_SECONDS", 60.0, "per-request timeout", "openimages", (("openimages", "timeout_seconds"),)),
    Setting("OPENIMAGES_ATTEMPTS", 4, "tries per request for transient errors", "openimages", (("openimages", "attempts"),)),
    Setting(
        "YOUTUBE_URL_TEMPLATE", DEFAULT_YOUTUBE_URL_TEMPLATE, "URL of a video, `{youtube_id}` substituted", "youtube",
        (("youtube", "url_template"),),
    ),
    Setting(
        "YOUTUBE_COOKIES_FILE", "", "Netscape-format cookies file (secret: never logged or recorded)", "youtube",
        (("youtube", "cookies_file"),), shown_default="none",
    ),
    Setting("YOUTUBE_SLEEP_SECONDS", 1.0, "pause before every request and every download", "youtube", (("youtube", "sleep_seconds"),)),
    Setting("YOUTUBE_SOCKET_TIMEOUT", 30.0, "socket timeout, seconds", "youtube", (("youtube", "socket_timeout_seconds"),)),
    Setting("YOUTUBE_FORMAT", DEFAULT_YOUTUBE_FORMAT, "yt-dlp format preference", "youtube", (("youtube", "format"),)),
    Setting("YOUTUBE_THREADS", 4, "clips cut at once within one partition", "youtube", (("youtube", "threads"),)),
    Setting("YOUTUBE_ATTEMPTS", 4, "tries per clip for transient errors", "youtube", (("youtube", "attempts"),)),
    Setting("YOUTUBE_BACKOFF_SECONDS", 2.0, "first backoff between tries (doubles)", "youtube", (("youtube", "backoff_seconds"),)),
    Setting(
        "ENCORD_RETRY_MAX_ATTEMPTS", 4, "retry runs per failed partition before it is exhausted", "operations",
        (("operations", "max_attempts"),),
    ),
    Setting(
        "ENCORD_RETRY_BACKOFF_SECONDS", 300, "wait after the first retry; doubles after each", "operations",
        (("operations", "backoff_seconds"),),
    ),
    Setting(
        "ENCORD_RETRY_MAX_BACKOFF_SECONDS", 6 * 3600, "longest wait between retries", "operations",
        (("operations", "max_backoff_seconds"),),
    ),
    Setting(
        "ENCORD_MAX_REQUESTS_PER_TICK", 10, "runs one sensor tick may request (over all sources)", "operations",
        (("operations", "max_requests_per_tick"),),
    ),
    Setting("ENCORD_RETRY_SENSOR", True, "retry sensor on by default", "operations"),
    Setting("ENCORD_RETRY_SENSOR_INTERVAL_SECONDS", 60, "seconds between retry sensor ticks", "operations"),
    Setting("ENCORD_FILL_SENSOR", False, "fill sensor on by default", "operations"),
    Setting("ENCORD_FILL_INTERVAL_SECONDS", 3600, "seconds between fill sensor ticks", "operations"),
    Setting(
        "ENCORD_FILL_TICK_SECONDS", 3, "a fill sensor tick looks at further sources (round-robin) only within this time",
        "operations", (("operations", "fill_tick_seconds"),),
    ),
    Setting(
        "ENCORD_DURATION_TOLERANCE_MS", 500, "allowed difference between a clip's duration and its infos times",
        "operations", (("operations", "duration_tolerance_ms"),),
    ),
    Setting("ENCORD_PROGRESS_SECONDS", 30, "seconds between progress lines", "operations", (("operations", "progress_seconds"),)),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}


def setting(name: str) -> Setting:
    return BY_NAME[name]


def resource_config(resource: str) -> dict:
    """The fields of resource `resource` that settings configure, as configured now."""
    return {
        field: value.configured()
        for value in SETTINGS
        for key, field in value.targets
        if key == resource and not (value.default is None and value.name not in os.environ)
    }


def current_values(resource: str) -> dict:
    """The fields of `resource` that settings set in the environment, read now (for plain objects
    that Dagster does not resolve, such as the mirror's link)."""
    return {
        field: value.read() for value in SETTINGS for key, field in value.targets if key == resource and value.name in os.environ
    }


def markdown_table(sections: list[str]) -> str:
    rows = ["| variable | meaning | default |", "|---|---|---|"]
    rows += [
        f"| `{value.name}` | {value.meaning} | {value.readme_default()} |" for value in SETTINGS if value.section in sections
    ]
    return "\n".join(rows)


_BLOCK = re.compile(r"(<!-- settings: (?P<sections>[a-z_, ]+) -->\n)(?P<body>.*?)(\n<!-- end settings -->)", re.S)


def readme_with_tables(text: str) -> str:
    """README text with every `<!-- settings: a, b -->` ... `<!-- end settings -->` block regenerated."""
    return _BLOCK.sub(
        lambda m: m.group(1) + markdown_table([s.strip() for s in m.group("sections").split(",")]) + m.group(4), text
    )


def readme_sections(text: str) -> list[str]:
    return [s.strip() for m in _BLOCK.finditer(text) for s in m.group("sections").split(",")]


def update_readme(path: Path) -> bool:
    """Rewrite README's settings tables; True when they changed."""
    text = path.read_text()
    new = readme_with_tables(text)
    path.write_text(new)
    return new != text
