"""A requests session for plain HTTP upstreams, counting what it receives."""

import requests

from encord_assets.ledger import FetchLedger
from encord_assets.sources.retry import Unavailable

CHUNK = 1 << 20


class HttpStatusError(Exception):
    """An error status, with the answer's headers (a Retry-After): `retry.classify` reads both."""

    def __init__(self, status: int, url: str, headers):
        super().__init__(f"{url} answered {status}")
        self.status = status
        self.headers = headers


def new_session(user_agent: str) -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    session.max_redirects = 10  # real upstreams redirect once or twice (HF: to its CDN); more is a loop
    return session


def announced_length(value: str | None) -> int | None:
    """The Content-Length as a size; None when absent or not a plain non-negative integer
    (`-1`, `1e3`, `10, 20`): the body is then bounded by the size limit alone."""
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def download(session: requests.Session, url: str, path, log: FetchLedger, timeout: float, max_bytes: int) -> int:
    """GET `url` into `path`; returns the announced size (or the size read when none was announced)."""
    with session.get(url, stream=True, timeout=timeout, allow_redirects=True) as response:
        log.fetched(0)
        response.raise_for_status()
        announced = announced_length(response.headers.get("Content-Length"))
        if announced is not None and announced > max_bytes:
            raise Unavailable("too_large", f"{url} announces {announced} bytes, over the {max_bytes}-byte limit")
        size = 0
        with open(path, "wb") as out:
            for chunk in response.iter_content(CHUNK):
                size += len(chunk)
                log.fetched(len(chunk), requests=0)
                if size > max_bytes:
                    raise Unavailable("too_large", f"{url} sent more than {max_bytes} bytes")
                out.write(chunk)
        return announced if announced is not None else size


