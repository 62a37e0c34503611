"""The mirror's Hugging Face Hub emulation, driven by the real huggingface_hub client."""

import zipfile
from pathlib import Path

import pytest
from huggingface_hub import HfApi, HfFileSystem, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from encord_assets.mirror import hf_hub
from encord_assets.mirror.media import jpeg_bytes, write_file, write_zip
from encord_assets.mirror.server import Mirror

REPO = "someone/things"


@pytest.fixture
def hub(tmp_path):
    repo = hf_hub.repo_dir(tmp_path, REPO)
    write_zip(repo / "images.zip", {f"images/{n}.jpg": jpeg_bytes(str(n)) for n in range(30)})
    for n in range(7):
        write_file(repo / "data" / f"part-{n}.txt", b"x" * n)
    write_file(repo / "README.md", b"# things\n")
    mirror = Mirror(tmp_path).start()
    hf_hub.routes(mirror)
    hf_hub.routes(mirror)  # idempotent: several upstream modules install it
    yield mirror
    mirror.stop()


def test_listing_is_paginated_and_revisions_resolve(hub, monkeypatch):
    monkeypatch.setattr(hf_hub, "PAGE_SIZE", 3)
    api = HfApi(endpoint=hub.url, token=False)
    files = api.list_repo_files(REPO, repo_type="dataset")
    assert files == ["README.md", *(f"data/part-{n}.txt" for n in range(7)), "images.zip"]
    assert hub.stats()["by_prefix"]["/api"]["requests"] >= 4
    sha = api.dataset_info(REPO).sha
    assert len(sha) == 40 and api.dataset_info(REPO, revision=sha).sha == sha
    infos = api.get_paths_info(REPO, ["README.md", "data", "nope"], repo_type="dataset")
    assert [info.path for info in infos] == ["README.md", "data"]
    assert sha == hf_hub.repo_sha(hub.state.content_dir, REPO)


def test_large_files_redirect_to_another_origin_with_their_metadata(hub):
    metadata = get_hf_file_metadata(hf_hub_url(REPO, "images.zip", repo_type="dataset", endpoint=hub.url), token=False)
    assert metadata.location.startswith(hub.cdn_url) and len(metadata.commit_hash) == 40
    archive = hf_hub.repo_dir(hub.state.content_dir, REPO) / "images.zip"
    assert metadata.size == archive.stat().st_size
    path = hf_hub_download(REPO, "images.zip", repo_type="dataset", endpoint=hub.url, token=False)
    assert Path(path).read_bytes() == archive.read_bytes()
    small = hf_hub_download(REPO, "README.md", repo_type="dataset", endpoint=hub.url, token=False)
    assert Path(small).read_bytes() == b"# things\n"


def test_ranged_reads_through_hf_file_system(hub):
    fs = HfFileSystem(endpoint=hub.url, token=False, skip_instance_cache=True)
    hub.reset_stats()
    with fs.open(f"hf://datasets/{REPO}@main/images.zip", "rb", cache_type="none") as f, zipfile.ZipFile(f) as zf:
        assert zf.read("images/7.jpg") == jpeg_bytes("7")
    archive = hf_hub.repo_dir(hub.state.content_dir, REPO) / "images.zip"
    assert hub.stats()["by_prefix"]["/hf"]["bytes"] < archive.stat().st_size / 4


def test_errors_carry_the_hub_error_codes(hub):
    api = HfApi(endpoint=hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("someone/nothing")
    with pytest.raises(RevisionNotFoundError):
        api.dataset_info(REPO, revision="v9")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.txt", repo_type="dataset", endpoint=hub.url, token=False)


def test_faults_apply_to_hub_routes(hub):
    hub.set_faults(0.3, kinds=("503", "500"), path_prefix="/datasets/", retry_after=0.0)
    fs = HfFileSystem(endpoint=hub.url, token=False, skip_instance_cache=True)
    with fs.open(f"hf://datasets/{REPO}@main/images.zip", "rb", cache_type="none") as f, zipfile.ZipFile(f) as zf:
        assert [zf.read(f"images/{n}.jpg") for n in range(3)] == [jpeg_bytes(str(n)) for n in range(3)]  # retried with backoff
    assert hub.stats()["faults_injected"] > 0
