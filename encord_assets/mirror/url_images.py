"""Images at arbitrary URLs: /urlimages/<scheme>/<host>/<path> answers for `<scheme>://<host>/<path>`.

Any host and path gets a real JPEG that depends only on the original URL, so the mirror
needs no files on disk for it. The demo routes every image URL here with the fetcher's
URL rewrite setting; tests force 404/429/non-image answers with `mirror.answer` and
stalls with fault injection on a path prefix.
"""

from pathlib import Path
from urllib.parse import urlsplit

import polars as pl

from encord_assets.mirror.media import jpeg_bytes
from encord_assets.mirror.server import Mirror, MirrorHandler, Reply

PREFIX = "/urlimages/"


def url_image(url: str) -> bytes:
    """The bytes the mirror serves for the original image URL `url`."""
    return jpeg_bytes(f"url:{url}")


def mirror_path(url: str) -> str:
    """The mirror path (with query) that stands for `url`."""
    scheme, _, rest = url.partition("://")
    return f"{PREFIX}{scheme}/{rest}"


def rewrite_setting(mirror: Mirror) -> str:
    return " ".join(f"{scheme}://=>{mirror.url}{PREFIX}{scheme}/" for scheme in ("http", "https"))


def _serve(handler: MirrorHandler, path: str) -> Reply | None:
    scheme, _, rest = handler.path[len(PREFIX) :].partition("/")
    if scheme not in ("http", "https") or not rest:
        return None
    return Reply(200, url_image(f"{scheme}://{rest}"), {"Content-Type": "image/jpeg"})


def build(rows: pl.DataFrame, content_dir: Path) -> None:
    """Nothing to write: images are made on request."""


def routes(mirror: Mirror) -> None:
    mirror.add_route(PREFIX, _serve)


def env(mirror: Mirror) -> dict[str, str]:
    # a mirror's partitions hold a handful of URLs: one img2dataset worker process (each one
    # imports img2dataset, seconds of CPU) is plenty; the mirror is the one loopback address allowed
    return {
        "URL_IMAGES_REWRITE": rewrite_setting(mirror),
        "URL_IMAGES_PROCESSES": "1",
        "URL_IMAGES_ALLOWED_NETWORKS": f"{urlsplit(mirror.url).hostname}/32",
    }
