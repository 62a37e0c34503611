"""YouTube clips through yt-dlp against the mirror (generic extractor on 127.0.0.1)."""

import sys
from pathlib import Path

import polars as pl
import pytest
from yt_dlp.utils import DownloadError, ExtractorError

from encord_assets.demo import normalized_rows
from encord_assets.layout.paths import BOOKKEEPING_DIR
from encord_assets.ledger import FetchLedger
from encord_assets.materialize import Materializer
from encord_assets.mirror import youtube
from encord_assets.mirror.server import Mirror, Reply
from encord_assets.mirror.youtube import video_path, write_one_partition_infos
from encord_assets.sources.ffmpeg import probe
from encord_assets.sources.registry import source_by_name
from encord_assets.sources.retry import classify
from encord_assets.sources.youtube import PoolCooldown, YoutubeClips, translate
from encord_assets.store import DatasetStore
from encord_assets_tests.conftest import manifest_of, partition_work, start_mirror


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch):
    monkeypatch.setenv("YOUTUBE_ATTEMPTS", "2")
    monkeypatch.setenv("YOUTUBE_BACKOFF_SECONDS", "0.05")


def record_requests(mirror) -> list[tuple[str, str | None]]:
    """(path, Cookie header) of every request the mirror gets for a YouTube video."""
    seen = []
    mirror.add_route("/youtube/", lambda handler, path: seen.append((path, handler.headers.get("Cookie"))))
    return seen


def infos_table(root: Path, modality: str, split: str) -> pl.DataFrame:
    return pl.read_parquet((root / BOOKKEEPING_DIR) / "tables" / f"infos_{modality}" / f"{split}.parquet")


def test_clips_match_their_rows_and_a_shared_audio_video_file_is_fetched_once(sample_mirror, materializer, root):
    seen = record_requests(sample_mirror)
    for modality in ("video", "audio"):
        materializer.run(f"infos_{modality}", "e-mm1_100m", raise_on_error=True)
    video, audio = infos_table(root, "video", "e-mm1_100m"), infos_table(root, "audio", "e-mm1_100m")
    shared = video.join(audio, on="target", suffix="_audio").row(0, named=True)
    assert shared["source"] == "video_valor" and shared["source_audio"] == "audio_vggsound"

    materializer.run("video_valor", shared["partition_key"], raise_on_error=True)
    manifest = manifest_of(root, "video_valor", shared["partition_key"])
    assert set(manifest["outcome"]) == {"placed"}
    for row in manifest.join(video, on="target").iter_rows(named=True):
        clip = probe(root / row["target"])
        assert clip.error is None and clip.has_video and clip.has_audio
        assert abs(clip.duration - (row["end_time"] - row["start_time"])) <= 0.5
        assert clip.duration < probe(sample_mirror.state.content_dir / video_path(row["youtube_id"]).lstrip("/")).duration

    requests_before = len(seen)
    materializer.run("audio_vggsound", shared["partition_key_audio"], raise_on_error=True)
    manifest = manifest_of(root, "audio_vggsound", shared["partition_key_audio"])
    assert manifest.filter(pl.col("target") == shared["target"])["outcome"].to_list() == ["already_present"]
    assert [path for path, _ in seen[requests_before:]] == []


def youtube_mirror(content_dir: Path, youtube_ids: list[str]) -> Mirror:
    youtube.build(pl.DataFrame({"youtube_id": youtube_ids, "end_time": [3.0] * len(youtube_ids)}), content_dir)
    return Mirror(content_dir).start()


def fetch_directly(root: Path, template: str, youtube_ids: list[str], modality: str = "video") -> pl.DataFrame:
    """Run the fetcher on its own (no partition), one 2-second clip per id; the per-target results."""
    rows = pl.DataFrame(
        {
            "youtube_id": youtube_ids,
            "start_time": [1.0] * len(youtube_ids),
            "end_time": [3.0] * len(youtube_ids),
            "target": [f"shared/{modality}/{i}.mp4" for i in youtube_ids],
            "modality": [modality] * len(youtube_ids),
        }
    )
    clips = YoutubeClips(url_template=template, sleep_seconds=0, attempts=2, backoff_seconds=0.05, threads=4)
    log = FetchLedger(root / "staging")
    clips.fetch(partition_work("video_valor", rows, log, root))
    return log.results().with_columns(youtube_id=pl.col("target").str.extract(r"/([^/]+)\.mp4$"))


def test_each_error_kind_is_permanent_or_transient(tmp_path, root):
    kinds = {"aaaaaaaaa01": 404, "aaaaaaaaa02": 403, "aaaaaaaaa03": "garbage", "aaaaaaaaa04": 429, "aaaaaaaaa05": 500, "aaaaaaaaa06": 503}
    reset, fine = "aaaaaaaaa07", "aaaaaaaaa08"
    ids = [*kinds, reset, fine]
    mirror = youtube_mirror(tmp_path / "mirror", ids)
    try:
        mirror.answer({video_path(i): answer for i, answer in kinds.items()})
        mirror.set_faults(1.0, kinds=("reset",), path_prefix=video_path(reset))
        results = fetch_directly(root, f"{mirror.url}/youtube/{{youtube_id}}.mp4", ids)
        # a web page with no video in it
        page = b"<html><head><title>nothing</title></head><body>no video here</body></html>"
        mirror.add_route("/pages/", lambda handler, path: Reply(200, page, {"Content-Type": "text/html"}))
        results = pl.concat([results, fetch_directly(root, f"{mirror.url}/pages/{{youtube_id}}", ["aaaaaaaaa09"])])
    finally:
        mirror.stop()
    outcome = {row["youtube_id"]: (row["outcome"], row["error_class"]) for row in results.iter_rows(named=True)}
    assert outcome == {
        "aaaaaaaaa01": ("unavailable", "http_404"),
        "aaaaaaaaa02": ("unavailable", "http_403"),
        "aaaaaaaaa03": ("unavailable", "undecodable"),
        "aaaaaaaaa04": ("failed", "http_429"),
        "aaaaaaaaa05": ("failed", "http_500"),
        "aaaaaaaaa06": ("failed", "http_503"),
        reset: ("failed", "TransportError"),
        fine: ("staged", None),
        "aaaaaaaaa09": ("unavailable", "unsupported"),
    }


def raised_by_yt_dlp(message: str) -> DownloadError:
    """A DownloadError as YoutubeDL raises it for an extractor's error (the original in exc_info)."""
    try:
        raise ExtractorError(message, expected=True)
    except ExtractorError as error:
        return DownloadError(f"ERROR: {error}", sys.exc_info())


@pytest.mark.parametrize(
    ("message", "transient", "error_class"),
    [
        ("[youtube] abcdefghijk: Sign in to confirm you\u2019re not a bot. Use --cookies", True, "BotCheck"),
        ("[youtube] abcdefghijk: Private video. Sign in if you've been granted access to this video", False, "private"),
        ("[youtube] abcdefghijk: Video unavailable. This video has been removed by the uploader", False, "removed"),
        ("[youtube] abcdefghijk: Sign in to confirm your age. This video may be inappropriate", False, "age_restricted"),
    ],
)
def test_youtube_answers_that_cannot_be_served_offline_are_classified(message, transient, error_class):
    verdict = classify(translate(raised_by_yt_dlp(message)))
    assert (verdict.transient, verdict.error_class) == (transient, error_class)


def test_a_429_with_retry_after_pauses_the_whole_pool(tmp_path, root):
    mirror = youtube_mirror(tmp_path / "mirror", ["bbbbbbbbb01"])
    try:
        mirror.set_faults(1.0, kinds=("429",), path_prefix="/youtube/", retry_after=0.3)
        results = fetch_directly(root, f"{mirror.url}/youtube/{{youtube_id}}.mp4", ["bbbbbbbbb01"])
    finally:
        mirror.stop()
    assert results["error_class"].to_list() == ["http_429"]
    assert PoolCooldown(DatasetStore(root=str(root))).until() > 0


def test_a_transient_failure_fails_the_partition_and_the_rerun_fetches_only_what_is_missing(tmp_path, monkeypatch, instance, root):
    ids = ["ccccccccc01", "ccccccccc02", "ccccccccc03"]
    write_one_partition_infos(tmp_path / "infos", ids, source_by_name("video_valor").shards)
    monkeypatch.setenv("ENCORD_INFOS_DIR", str(tmp_path / "infos"))
    mirror = start_mirror(normalized_rows(tmp_path / "infos"), tmp_path / "mirror", monkeypatch)
    seen = record_requests(mirror)
    try:
        materializer = Materializer(instance)
        materializer.run("infos_video", "e-mm1_100m", raise_on_error=True)
        (key,) = materializer.source_partitions("video_valor", "video")
        mirror.set_faults(1.0, kinds=("503",), path_prefix=video_path(ids[1]))
        assert not materializer.run("video_valor", key).success
        first = dict(manifest_of(root, "video_valor", key).select("target", "outcome").iter_rows())
        assert sorted(first.values()) == ["failed", "placed", "placed"]

        mirror.set_faults(0.0)
        seen.clear()
        assert materializer.run("video_valor", key).success
    finally:
        mirror.stop()
    second = dict(manifest_of(root, "video_valor", key).select("target", "outcome").iter_rows())
    assert {target: second[target] for target in first} == {
        target: "placed" if outcome == "failed" else "already_present" for target, outcome in first.items()
    }
    assert {path for path, _ in seen} == {video_path(ids[1])}


def test_the_cookies_file_contents_never_reach_logs_metadata_or_manifests(tmp_path, monkeypatch, instance, root, capfd):
    secret = "s3cr3t-cookie-value-8f1c2e"
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t4102444800\tSID\t{secret}\n")
    ids = ["ddddddddd01", "ddddddddd02"]
    write_one_partition_infos(tmp_path / "infos", ids, source_by_name("video_valor").shards)
    monkeypatch.setenv("ENCORD_INFOS_DIR", str(tmp_path / "infos"))
    monkeypatch.setenv("YOUTUBE_COOKIES_FILE", str(cookies))
    mirror = start_mirror(normalized_rows(tmp_path / "infos"), tmp_path / "mirror", monkeypatch)
    seen = record_requests(mirror)
    try:
        mirror.answer({video_path(ids[1]): 404})
        materializer = Materializer(instance)
        materializer.run("infos_video", "e-mm1_100m", raise_on_error=True)
        (key,) = materializer.source_partitions("video_valor", "video")
        result = materializer.run("video_valor", key, raise_on_error=True)
    finally:
        mirror.stop()
    assert any(secret in (cookie or "") for _, cookie in seen), "the cookies were not sent upstream"
    manifest = manifest_of(root, "video_valor", key)
    assert sorted(manifest["outcome"]) == ["placed", "unavailable"]

    written = [path.read_bytes() for path in root.rglob("*") if path.is_file()]
    events = [str(event) for event in instance.all_logs(result.run_id)]
    output = capfd.readouterr()
    assert not any(secret.encode() in data for data in written)
    assert not any(secret in text for text in [*events, output.out, output.err])
    assert cookies.read_text().count(secret) == 1  # yt-dlp saved its jar to a private copy, not over the user's file
