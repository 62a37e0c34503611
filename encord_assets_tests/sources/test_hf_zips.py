"""Flickr30k (one zip) and VidGen-1M (indexed zips), with the real huggingface_hub client against the mirror."""

import zipfile

import polars as pl

from encord_assets.materialize import Materializer
from encord_assets.mirror import flickr30k, hf_hub, vidgen
from encord_assets.sources.zip_members import END_RECORD_BYTES
from encord_assets_tests.conftest import materialization_metadata
from encord_assets_tests.sources.hf_setup import SAVE_FOLDER, manifest, point_at, serve, sha256, write_infos


def only(source: str, builder, **options):
    return lambda rows, content: builder(rows.filter(pl.col("source") == source), content, **options)


def zip_budget(path, needed_stems: set[str]) -> int:
    """Bytes of the needed members (local header, name, data) plus the central directory and remotezip's
    first read of the end record, which overlaps it (0 for a zip holding none of them)."""
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if i.filename.rsplit("/", 1)[-1].split(".")[0] in needed_stems]
        central = path.stat().st_size - zf.start_dir
    return sum(30 + len(i.filename.encode()) + len(i.extra) + i.compress_size for i in infos) + (central + END_RECORD_BYTES if infos else 0)


def archive_bytes(stats: dict) -> int:
    """Bytes the mirror sent from the repositories' files (/resolve and its CDN), not the Hub's API."""
    return sum(stats["by_prefix"].get(prefix, {"bytes": 0})["bytes"] for prefix in ("/datasets", "/hf"))


def test_flickr30k_one_percent_reads_its_members_and_the_central_directory(tmp_path, monkeypatch, instance, root):
    needed = [str(1_000_000 + n) for n in range(10)]
    write_infos(tmp_path / "infos", "image", "Flickr30k", needed, ".jpg")
    mirror = serve(tmp_path, monkeypatch, only("image_flickr30k", flickr30k.build, decoys=990))
    materializer = Materializer(instance)
    materializer.run("infos_image", "e-mm1_1m", raise_on_error=True)
    archive = hf_hub.repo_dir(tmp_path / "mirror", flickr30k.REPO) / flickr30k.ARCHIVE
    keys = materializer.source_partitions("image_flickr30k", "image")
    assert len(keys) > 1
    for key in keys:
        mirror.reset_stats()
        result = materializer.run("image_flickr30k", key, raise_on_error=True)
        rows = manifest(root, "image_flickr30k", key)
        stems = {target.rsplit("/", 1)[-1].removesuffix(".jpg") for target in rows["target"]}
        stats = mirror.stats()
        assert stats["bytes_sent"] <= 1.2 * zip_budget(archive, stems), key
        # /resolve: one HEAD for the central directory and all the members' ranges (then the CDN)
        assert stats["by_prefix"]["/datasets"]["requests"] == 1, stats
        meta = materialization_metadata(result, "image_flickr30k")
        assert meta["read_method"] == "ranges" and "round trip" in meta["read_reason"], meta
        assert rows["outcome"].unique().to_list() == ["placed"]
    for file_id in needed:
        assert sha256((root / SAVE_FOLDER / "image" / f"{file_id}.jpg").read_bytes()) == sha256(flickr30k.flickr_image(file_id))


def test_a_truncated_zip_fails_the_partition_and_places_nothing(tmp_path, monkeypatch, instance, root):
    write_infos(tmp_path / "infos", "image", "Flickr30k", ["1000001"], ".jpg")

    def truncate(content):
        archive = hf_hub.repo_dir(content, flickr30k.REPO) / flickr30k.ARCHIVE
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])

    serve(tmp_path, monkeypatch, only("image_flickr30k", flickr30k.build, decoys=20), truncate)
    materializer = Materializer(instance)
    materializer.run("infos_image", "e-mm1_1m", raise_on_error=True)
    (key,) = materializer.source_partitions("image_flickr30k", "image")
    result = materializer.run("image_flickr30k", key)

    assert not result.success
    (row,) = manifest(root, "image_flickr30k", key).iter_rows(named=True)
    assert row["outcome"] == "failed" and row["error_class"] == "corrupt_archive", row
    assert not (root / SAVE_FOLDER / "image" / "1000001.jpg").exists()


def test_vidgen_index_routes_clips_and_is_rebuilt_when_the_revision_changes(tmp_path, monkeypatch, instance, root):
    clips = [f"clip{n:07d}-Scene-{n:04d}" for n in range(6)]
    missing = clips[-1]
    write_infos(tmp_path / "infos", "video", "VidGen-1M", clips, ".mp4")

    def present(rows, content):
        vidgen.build(rows.filter((pl.col("source") == "video_vidgen1m") & (pl.col("file_id") != missing)), content, decoys=12)

    mirror = serve(tmp_path, monkeypatch, present)
    materializer = Materializer(instance)
    materializer.run("infos_video", "e-mm1_1m", raise_on_error=True)
    first = materializer.run("index_vidgen", raise_on_error=True)
    index_path = first.asset_materializations_for_node("index_vidgen")[0].metadata["path"].value
    assert missing not in pl.read_parquet(index_path)["file_id"].to_list()
    keys = materializer.source_partitions("video_vidgen1m", "video")
    zips = sorted(hf_hub.repo_dir(tmp_path / "mirror", vidgen.REPO).rglob("*.zip"))
    for key in keys:
        mirror.reset_stats()
        materializer.run("video_vidgen1m", key, raise_on_error=True)
        stems = {target.rsplit("/", 1)[-1].removesuffix(".mp4") for target in manifest(root, "video_vidgen1m", key)["target"]}
        assert archive_bytes(mirror.stats()) <= 1.2 * sum(zip_budget(path, stems) for path in zips), key

    outcomes = pl.concat([manifest(root, "video_vidgen1m", key) for key in keys])
    assert outcomes.filter(pl.col("outcome") == "placed").height == len(clips) - 1
    (absent,) = outcomes.filter(pl.col("outcome") != "placed").iter_rows(named=True)
    assert absent["outcome"] == "unavailable" and absent["error_class"] == "not_in_repo" and missing in absent["error_message"]
    for clip in clips[:-1]:
        assert sha256((root / SAVE_FOLDER / "video" / f"{clip}.mp4").read_bytes()) == sha256(vidgen.vidgen_clip(clip))

    # The upstream gains the missing clip: a new commit, so the index is built again.
    vidgen.build(pl.DataFrame({"file_id": clips}), tmp_path / "mirror", decoys=12)
    point_at(mirror, monkeypatch)
    second = Materializer(instance).run("index_vidgen", raise_on_error=True)
    built = [run.asset_materializations_for_node("index_vidgen")[0].metadata for run in (first, second)]
    assert built[0]["revision"].value != built[1]["revision"].value
    assert missing in pl.read_parquet(built[1]["path"].value)["file_id"].to_list()


def test_transient_faults_are_retried_and_a_404_is_unavailable(tmp_path, monkeypatch, instance, root):
    write_infos(tmp_path / "infos", "image", "Flickr30k", ["1000001"], ".jpg")
    mirror = serve(tmp_path, monkeypatch, only("image_flickr30k", flickr30k.build, decoys=20))
    materializer = Materializer(instance)
    materializer.run("infos_image", "e-mm1_1m", raise_on_error=True)
    (key,) = materializer.source_partitions("image_flickr30k", "image")

    mirror.set_faults(0.3, kinds=("500", "503", "reset", "truncate"), path_prefix="/hf/", retry_after=0.0)
    materializer.run("image_flickr30k", key, raise_on_error=True)
    assert mirror.stats()["faults_injected"] > 0
    assert manifest(root, "image_flickr30k", key)["outcome"].to_list() == ["placed"]

    mirror.set_faults(0.0)
    (root / SAVE_FOLDER / "image" / "1000001.jpg").unlink()
    revision = hf_hub.repo_sha(tmp_path / "mirror", flickr30k.REPO)
    mirror.answer({f"/datasets/{flickr30k.REPO}/resolve/{revision}/{flickr30k.ARCHIVE}": 404})
    materializer.run("image_flickr30k", key, raise_on_error=True)
    (row,) = manifest(root, "image_flickr30k", key).iter_rows(named=True)
    assert row["outcome"] == "unavailable" and row["error_class"] == "http_404", row
