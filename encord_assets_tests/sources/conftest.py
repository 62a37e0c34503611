import urllib.request

import pytest

from encord_assets.sources.url_images import QUIET_ENV


@pytest.fixture
def img2dataset_download(monkeypatch):
    """img2dataset's own download function, in this process, with urllib's opener rebuilt from
    the environment (the proxy settings) for each test."""
    for name, value in QUIET_ENV.items():
        monkeypatch.setenv(name, value)
    from img2dataset.downloader import download_image

    urllib.request.install_opener(None)
    yield lambda url: download_image((0, url), 5, "encord-assets-test", None)
    urllib.request.install_opener(None)
