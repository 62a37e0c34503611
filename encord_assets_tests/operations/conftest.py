"""Helpers for the operations tests: materialized infos and a partition made to fail on the mirror."""

import pytest

from encord_assets.materialize import Materializer


@pytest.fixture
def operations_env(monkeypatch):
    """Retry settings for tests, set before the definitions are built: no backoff, two attempts;
    fill ticks that look at every source."""

    def apply(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, str(value))

    apply(ENCORD_RETRY_BACKOFF_SECONDS=0, ENCORD_RETRY_MAX_ATTEMPTS=2, ENCORD_MAX_REQUESTS_PER_TICK=10, ENCORD_FILL_TICK_SECONDS=600)
    return apply


@pytest.fixture
def coco(sample_mirror, instance, root, operations_env):
    """Definitions built after the settings, with infos_image materialized for both splits."""
    materializer = Materializer(instance)
    for split in ("e-mm1_100m", "e-mm1_1m"):
        materializer.run("infos_image", split, raise_on_error=True)
    return materializer
