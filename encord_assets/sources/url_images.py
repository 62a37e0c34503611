"""Images that live at a URL of their own (Google Conceptual Captions): img2dataset per partition.

img2dataset downloads into a fresh folder per run (its `incremental_mode="overwrite"` is
broken) with `skip_reencode=True` and `resize_mode="no"`, so JPEG originals are kept byte
for byte. It names files by key; the per-shard parquet maps each key back to our row and
carries `status`/`error_message`, which become the row's outcome. The files are staged
where img2dataset wrote them (inside the partition's staging folder) and the IO manager
renames them into place.

img2dataset installs a SIGINT handler, which Python allows only in the main thread: the
step runs it there when it can (Dagster's in-process executor and the step processes of
the multiprocess executor both run steps in their main thread), and otherwise in a child
process. The previous handler is restored afterwards so Ctrl-C keeps reaching Dagster.

Only http(s) URLs are handed over, and img2dataset reaches them through a proxy (a process of
its own) that refuses loopback, link-local, private and multicast addresses unless allowed
(`address_policy.py`).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable

import dagster as dg

from encord_assets.lazy import pl
from encord_assets.ledger import FetchLedger
from encord_assets.sources.address_policy import AddressPolicy, VettingProxy
from encord_assets.sources.retry import PERMANENT_STATUS
from encord_assets.sources.work import PartitionWork

# Every img2dataset worker would otherwise ask the network whether albumentations is current.
QUIET_ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "WANDB_SILENT": "true"}

_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")
# the proxy's own verdicts, which arrive as HTTP errors or failed tunnels: never worth a retry
_PROXY_VERDICT = re.compile(r"\b(blocked_address|blocked_scheme|host_not_found|bad_url)\b")
_WEB_URL = r"(?i)^https?://"
# (pattern in img2dataset's error_message, error_class, permanent?) - the first match wins.
# urllib's messages: "HTTP Error 404: Not Found", "<urlopen error [Errno -2] Name or service
# not known>", "timed out", "Remote end closed connection without response", ...
_MESSAGE_RULES = (
    (re.compile(r"Image decoding error|cannot identify image", re.I), "undecodable", True),
    (re.compile(r"disallowed by X-Robots-Tag", re.I), "disallowed_by_robots_tag", True),
    (re.compile(r"unknown url type|no host given", re.I), "bad_url", True),
    (re.compile(r"Name or service not known|nodename nor servname|No address associated", re.I), "host_not_found", True),
    (re.compile(r"CERTIFICATE_VERIFY_FAILED", re.I), "bad_certificate", True),
    (re.compile(r"timed out", re.I), "timeout", False),
)


def rewrite_rules(spec: str) -> list[tuple[str, str]]:
    """Parse `FROM=>TO` rules separated by whitespace or newlines (URLs hold no bare whitespace)."""
    rules = []
    for rule in spec.split():
        source, arrow, replacement = rule.partition("=>")
        if not arrow or not source:
            raise ValueError(f"URL rewrite rule {rule!r} is not of the form FROM_PREFIX=>TO_PREFIX")
        rules.append((source, replacement))
    return rules


def rewrite_url_expr(url: pl.Expr, rules: list[tuple[str, str]]) -> pl.Expr:
    """The URL with the first matching prefix replaced (unchanged when no rule matches)."""
    result = url
    for source, replacement in reversed(rules):
        result = pl.when(url.str.starts_with(source)).then(
            pl.lit(replacement) + url.str.slice(len(source))
        ).otherwise(result)
    return result


def outcome_of(status: str | None, error_message: str | None) -> tuple[bool, str, str] | None:
    """None for a success, else (permanent, error_class, message) for img2dataset's verdict on a row."""
    if status == "success":
        return None
    message = error_message or status or "img2dataset recorded no result"
    if match := _PROXY_VERDICT.search(message):
        return True, match.group(1), message
    if match := _HTTP_STATUS.search(message):
        code = int(match.group(1))
        return code in PERMANENT_STATUS, f"http_{code}", message
    for pattern, error_class, permanent in _MESSAGE_RULES:
        if pattern.search(message):
            return permanent, error_class, message
    if status == "failed_to_resize":
        # everything else the resizer refuses is about the image itself, not the connection
        return True, "undecodable", message
    # Resets, refused connections, truncated bodies and anything unknown are worth another try.
    return False, "download_error", message


def _img2dataset(**options) -> None:
    os.environ.update(QUIET_ENV)
    from img2dataset import download

    previous = signal.getsignal(signal.SIGINT)
    try:
        download(**options)
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def output_to(log: Callable[[str], None]):
    """img2dataset and its worker processes print to file descriptors 1 and 2: collect what they
    write while this block runs and hand it to `log` (the step log), not the terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                log(f"img2dataset output:\n{text[-20000:]}")


def run_img2dataset(log: Callable[[str], None], **options) -> None:
    """Run img2dataset in this process's main thread, or in a child process from any other
    thread; what it prints goes to `log`."""
    with output_to(log):
        if threading.current_thread() is threading.main_thread():
            _img2dataset(**options)
            return
        child = multiprocessing.get_context("spawn").Process(target=_img2dataset, kwargs=options)
        child.start()
        child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"img2dataset exited with status {child.exitcode}")


class UrlImages(dg.ConfigurableResource):
    """Fetches images from the URL in each row's `file_id` with img2dataset."""

    processes: int = 2
    threads: int = 32
    timeout_seconds: int = 10
    # img2dataset's own retries (it retries any error, without backoff); failed rows are
    # retried by re-running the partition
    retries: int = 1
    # token added to img2dataset's User-Agent: "... (compatible; <token>; +https://github.com/rom1504/img2dataset)"
    user_agent: str = "encord-assets"
    # FROM=>TO URL prefix rewrites, separated by spaces, first match wins: route URLs through a cache
    url_rewrite: str = ""
    # networks (CIDR, separated by commas) reachable beyond public addresses, e.g. 127.0.0.1/32 for a local mirror
    allowed_networks: str = ""
    # longest answer read for one URL (img2dataset holds each body in memory): cut beyond it
    max_image_bytes: int = 64 << 20

    def fetch(self, work: PartitionWork) -> None:
        rows, log = work.rows, work.ledger
        urls = rows.select("target", rewrite_url_expr(pl.col("file_id"), rewrite_rules(self.url_rewrite)).alias("url"))
        # urllib would open file:// and ftp:// URLs too
        web = pl.col("url").str.contains(_WEB_URL).fill_null(False)
        for target, url in urls.filter(~web).iter_rows():
            log.unavailable(target, "unsupported_scheme", f"{url!r}: only http and https URLs are fetched")
        urls = urls.filter(web)
        if urls.is_empty():
            return
        # one download per distinct URL; other rows with the same URL get a local copy
        unique = urls.unique("url", keep="first", maintain_order=True)
        log.staging_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="img2dataset-", dir=log.staging_dir))
        url_list = folder / "urls.parquet"
        unique.write_parquet(url_list)
        output = folder / "out"
        per_shard = max(1, math.ceil(unique.height / max(1, self.processes)))
        where = "in the step's process" if threading.current_thread() is threading.main_thread() else "in a child process"
        work.log.info(f"img2dataset {where}: {unique.height} URLs, {self.processes} process(es) x {self.threads} threads")
        # the proxy waits longer than img2dataset: a stalled upstream is then img2dataset's own timeout,
        # not a connection the proxy closed first (which would read as a download error)
        proxy = VettingProxy(AddressPolicy.from_setting(self.allowed_networks), 2 * self.timeout_seconds, self.max_image_bytes)
        with proxy, proxy.as_environment():
            run_img2dataset(
                work.log.info,
                url_list=str(url_list),
                input_format="parquet",
                url_col="url",
                save_additional_columns=["target"],
                output_folder=str(output),
                output_format="files",
                processes_count=self.processes,
                thread_count=self.threads,
                number_sample_per_shard=per_shard,
                oom_shard_count=max(5, len(str(unique.height))),
                resize_mode="no",
                skip_reencode=True,
                encode_format="jpg",
                timeout=self.timeout_seconds,
                retries=self.retries,
                user_agent_token=self.user_agent,
                enable_wandb=False,
                extract_exif=False,
                # placing hashes every file anyway: img2dataset's own column would go unread
                compute_hash=None,
                incremental_mode="incremental",
            )
        self._record(output, log)
        for target in unique["target"]:
            if not log.has_result(target):
                log.failed(target, "no_result", "img2dataset recorded no result for this URL (its shard failed)")
        copies = urls.filter(~pl.col("target").is_in(unique["target"].implode())).join(
            unique.select("url", pl.col("target").alias("downloaded")), on="url"
        )
        if copies.height:
            settled = {row["target"]: row for row in log.results().iter_rows(named=True)}
            for target, downloaded in copies.select("target", "downloaded").iter_rows():
                self._record_copy(target, settled[downloaded], log)

    @staticmethod
    def _record(output: Path, log: FetchLedger) -> None:
        shards = sorted(output.glob("*.parquet"))
        if not shards:
            return
        results = pl.read_parquet(shards, columns=["key", "target", "status", "error_message"])
        # img2dataset writes `<shard>/<key>.jpg`: one listing per shard folder, not a search per key
        files = {
            entry.name.removesuffix(".jpg"): entry
            for folder in output.iterdir()
            if folder.is_dir()
            for entry in os.scandir(folder)
            if entry.name.endswith(".jpg")
        }
        for key, target, status, message in results.iter_rows():
            verdict = outcome_of(status, message)
            if verdict is None:
                if (entry := files.get(key)) is None:
                    log.failed(target, "staging_lost", f"img2dataset reported {key}.jpg written, but it is not in its output")
                    continue
                size = entry.stat().st_size
                log.fetched(size)
                log.staged(target, Path(entry.path), size)
                continue
            permanent, error_class, text = verdict
            log.fetched(0)
            (log.unavailable if permanent else log.failed)(target, error_class, text)

    @staticmethod
    def _record_copy(target: str, first: dict, log: FetchLedger) -> None:
        """`target` shares its URL with the row whose result is `first`."""
        if first["outcome"] == "staged":
            log.staged_copy(target, first["target"])
        else:
            record = log.unavailable if first["outcome"] == "unavailable" else log.failed
            record(target, first["error_class"], first["error_message"])



# the resource the registry names by this module's name (sources/registry.py)
RESOURCE = UrlImages
