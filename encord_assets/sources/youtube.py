"""YouTube clips for video and audio rows: yt-dlp fetches only each row's start-end section,
cut exactly at the row's times (keyframes forced at the cuts), as mp4, into staging.

The download guide runs the yt-dlp CLI once per row, one after another; here the clips of a
partition are cut by a few threads, each clip is checked (it decodes, it lasts end - start),
and yt-dlp's errors become outcomes: 404/403/private/removed/unsupported/undecodable are
`unavailable`, 429/5xx/transport errors and YouTube's bot checks are retried with backoff and
end as `failed`. A bot check or a 429 also pauses every YouTube download on this ROOT.
"""

import math
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg

from encord_assets.ledger import FetchLedger
from encord_assets.sources.ffmpeg import ffmpeg_on_path, probe
from encord_assets.settings import DEFAULT_YOUTUBE_FORMAT, DEFAULT_YOUTUBE_URL_TEMPLATE
from encord_assets.sources.retry import RetryPolicy, Unavailable, Verdict, record_error
from encord_assets.sources.work import PartitionWork
from encord_assets.store import DatasetStore

# yt-dlp's wording (from YouTube) for videos that will never be downloadable
PERMANENT_MESSAGES = (
    (re.compile(r"private video", re.IGNORECASE), "private"),
    (re.compile(r"confirm your age|age.restricted|inappropriate for some users", re.IGNORECASE), "age_restricted"),
    (
        re.compile(
            r"video unavailable|no longer available|has been removed|been terminated|not available in your country"
            r"|members.only|copyright|does not exist",
            re.IGNORECASE,
        ),
        "removed",
    ),
    (re.compile(r"requested format is not available", re.IGNORECASE), "format_unavailable"),
)
BOT_CHECK = re.compile(r"confirm you.{0,3}re not a bot", re.IGNORECASE)


class BotCheck(Exception):
    """YouTube asks to sign in to prove we are not a bot: transient, and every download should slow down."""


class BrokenMedia(Exception):
    """ffmpeg could not cut the clip, or the clip fails the check.

    A network fault in the middle of ffmpeg's read looks the same as broken media, so this is
    retried; only when every attempt ends this same way is the clip `unavailable`.
    """

    def __init__(self, error_class: str, message: str):
        super().__init__(message)
        self.error_class = error_class


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what caused it: yt-dlp keeps the original in `exc_info`, ExtractorError in `cause`."""
    chain: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is seen for seen in chain):
            continue
        chain.append(current)
        exc_info = getattr(current, "exc_info", None)
        todo += [exc_info[1] if isinstance(exc_info, tuple) else None, getattr(current, "cause", None), current.__cause__]
    return chain


def translate(error: BaseException) -> BaseException:
    """The exception retry.py classifies for a yt-dlp error (HTTP statuses and transport errors as they came)."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import UnsupportedError

    chain = _causes(error)
    message = " | ".join(dict.fromkeys(str(e) for e in chain if str(e)))
    if BOT_CHECK.search(message):
        return BotCheck(message)
    for wanted in (HTTPError, TransportError):
        found = next((e for e in chain if isinstance(e, wanted)), None)
        if found is not None:
            return found
    if any(isinstance(e, UnsupportedError) for e in chain):
        return Unavailable("unsupported", message)
    for pattern, error_class in PERMANENT_MESSAGES:
        if pattern.search(message):
            return Unavailable(error_class, message)
    if "ffmpeg exited" in message:
        return BrokenMedia("undecodable", message)
    return error


class PoolCooldown:
    """A pause shared by every YouTube download into one ROOT: all threads and all runs read the same
    bookkeeping file."""

    def __init__(self, store: DatasetStore):
        self.store = store
        self.key = store.state_key("youtube", "pause_until")

    def until(self) -> float:
        try:
            return float(self.store.read_bytes(self.key) or 0.0)
        except ValueError:
            return 0.0

    def extend(self, seconds: float) -> None:
        until = time.time() + seconds
        if until > self.until():
            self.store.write_bytes(self.key, repr(until).encode())

    def wait(self) -> None:
        remaining = self.until() - time.time()
        if remaining > 0:
            time.sleep(remaining)


class _Silent:
    """yt-dlp's own output is dropped: errors come back as exceptions, and its debug output
    may show request headers, cookies included."""

    def debug(self, message: str) -> None:
        pass

    info = warning = error = debug


class YoutubeClips(dg.ConfigurableResource):
    """Cuts clips of YouTube videos (or of anything yt-dlp can read, through url_template) with yt-dlp."""

    url_template: str = DEFAULT_YOUTUBE_URL_TEMPLATE
    # Netscape-format cookies for signed-in downloads; the contents are a secret, never logged or recorded
    cookies_file: str = ""
    # pause before every upstream request and every download (yt-dlp's sleep options)
    sleep_seconds: float = 1.0
    socket_timeout_seconds: float = 30.0
    format: str = DEFAULT_YOUTUBE_FORMAT
    threads: int = 4
    attempts: int = 4
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 120.0
    # how long every YouTube download on this ROOT pauses after a bot check
    bot_check_pause_seconds: float = 300.0
    duration_tolerance_seconds: float = 0.5

    def fetch(self, work: PartitionWork) -> None:
        rows, log = work.rows, work.ledger
        retry = RetryPolicy(self.attempts, self.backoff_seconds, self.max_backoff_seconds)
        cooldown = PoolCooldown(work.store)
        ffmpeg = ffmpeg_on_path()
        clips: dict[tuple[str, float, float], list[str]] = {}
        for youtube_id, start, end, target in rows.select("youtube_id", "start_time", "end_time", "target").iter_rows():
            clips.setdefault((youtube_id, start, end), []).append(target)
        modality = rows["modality"][0]
        work.log.info(f"cutting {len(clips)} YouTube clip(s) with {self.threads} thread(s)")

        def on_retry(youtube_id: str, verdict: Verdict, wait: float) -> None:
            if verdict.error_class == BotCheck.__name__:
                cooldown.extend(self.bot_check_pause_seconds)
            elif verdict.retry_after:
                cooldown.extend(verdict.retry_after)
            work.log.warning(f"{youtube_id}: {verdict.error_class}; retrying in {wait:.1f} s")

        def fetch_clip(item: tuple[tuple[str, float, float], list[str]]) -> None:
            (youtube_id, start, end), targets = item
            out = log.staging_path().with_suffix(".mp4")
            earlier: list[tuple[str, str]] = []

            def retrying(verdict: Verdict, wait: float) -> None:
                earlier.append((verdict.error_class, verdict.message))
                on_retry(youtube_id, verdict, wait)

            try:
                size = retry.call(lambda: self._cut(youtube_id, start, end, modality, out, ffmpeg, cooldown, log), on_retry=retrying)
            except BrokenMedia as error:
                # Broken media breaks the same way every time; network faults in ffmpeg's reads vary.
                same = all(seen == (BrokenMedia.__name__, str(error)) for seen in earlier)
                for target in targets:
                    if same:
                        log.unavailable(target, error.error_class, str(error))
                    else:
                        log.failed(target, error.error_class, f"{error} (earlier attempts failed differently: a faulty read)")
                return
            except Exception as error:  # noqa: BLE001 - every row gets an outcome
                record_error(log, targets, error)
                return
            log.staged_all(targets, out, size)

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(fetch_clip, clips.items()))

    def _options(self, out: Path, start: float, end: float, ffmpeg: str, cookies: str | None) -> dict:
        from yt_dlp.utils import download_range_func

        return {
            "outtmpl": str(out),
            "format": self.format,
            "merge_output_format": "mp4",
            "download_ranges": download_range_func(None, [(start, end)]),
            "force_keyframes_at_cuts": True,
            "external_downloader_args": {
                # ffmpeg reads the video itself: it rides out resets, truncated bodies and 5xx by
                # reconnecting at the offset it reached, and gives up on a stalled read
                "ffmpeg_i": [
                    "-reconnect", "1", "-reconnect_on_network_error", "1", "-reconnect_on_http_error", "429,5xx",
                    "-reconnect_max_retries", str(self.attempts), "-reconnect_delay_max", str(math.ceil(self.backoff_seconds * 4)),
                    "-rw_timeout", str(int(self.socket_timeout_seconds * 1_000_000)),
                ],
                # and a read that still fails is an error, not the end of the input: without this,
                # ffmpeg writes a clip cut from what it got, which can pass the duration check
                "ffmpeg_o": ["-xerror"],
            },
            "ffmpeg_location": ffmpeg,
            "cookiefile": cookies,
            "socket_timeout": self.socket_timeout_seconds,
            "sleep_interval_requests": self.sleep_seconds,
            "sleep_interval": self.sleep_seconds,
            # retries are ours: classified, with backoff and the pool-wide pause
            "retries": 0,
            "fragment_retries": 0,
            "extractor_retries": 0,
            "noplaylist": True,
            "overwrites": True,
            "continuedl": False,
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "logger": _Silent(),
        }

    def _cut(
        self, youtube_id: str, start: float, end: float, modality: str, out: Path, ffmpeg: str, cooldown: PoolCooldown, log: FetchLedger
    ) -> int:
        """One attempt at one clip; returns the staged clip's size."""
        import yt_dlp  # here, not at import: the code location loads without it

        cooldown.wait()
        log.fetched(0)
        with tempfile.TemporaryDirectory(prefix="encord-assets-yt-") as private:
            cookies = None
            if self.cookies_file:
                # yt-dlp writes the cookie jar back on exit: each attempt gets its own copy
                cookies = shutil.copyfile(self.cookies_file, Path(private) / "cookies.txt")
            try:
                with yt_dlp.YoutubeDL(self._options(out, start, end, ffmpeg, str(cookies) if cookies else None)) as ydl:
                    ydl.download([self.url_template.format(youtube_id=youtube_id)])
            except yt_dlp.utils.DownloadError as error:
                raise translate(error) from None
        if not out.is_file():
            raise BrokenMedia("no_output", "yt-dlp finished without writing the clip")
        size = out.stat().st_size
        # ffmpeg reads upstream itself; the clip is what came back to us
        log.fetched(size, requests=0)
        self._check(out, end - start, modality)
        return size

    def _check(self, clip: Path, seconds: float, modality: str) -> None:
        found = probe(clip)
        if found.error:
            raise BrokenMedia("undecodable", f"the clip does not decode: {found.error}")
        if found.duration is None or abs(found.duration - seconds) > self.duration_tolerance_seconds:
            raise BrokenMedia("wrong_duration", f"the clip lasts {found.duration} s, the row asks for {seconds:.3f} s")
        if not (found.has_audio if modality == "audio" else found.has_video):
            raise BrokenMedia(f"no_{modality}", f"the clip has no {modality} stream")


# the resource the registry names by this module's name (sources/registry.py)
RESOURCE = YoutubeClips
