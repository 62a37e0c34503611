"""Promise 7: the Hugging Face token, the YouTube cookies and the object store's secret key never appear
in logs, metadata, manifests or errors, even when every fetcher fails and retries (the real CLI, its
output, Dagster's storage, and every file or object under ROOT)."""

import os
import uuid

import pytest

from encord_assets.materialize import Materializer
from encord_assets.sources.resources import fetcher_resources
from encord_assets_tests.reliability.support import (
    FAST_SETTINGS,
    FETCHERS,
    TESTED_SPECS,
    prepare,
    start_materialize,
    store_of,
)

pytestmark = pytest.mark.long_running


def root_contents(root) -> list[tuple[str, bytes]]:
    """Every file or object under ROOT, bookkeeping included."""
    store = store_of(root)
    return [(store.uri(key), store.read_bytes(key)) for key in store.find("")]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_secrets_never_leak(where, packed, packed_mirror, instance, request, dagster_home, tmp_path, capfd, monkeypatch):
    root = request.getfixturevalue("root" if where == "local" else "s3_root")
    secrets = {}
    if where == "s3":  # the local server takes any key: a unique one, to look for
        secrets["aws_secret"] = f"aws-{uuid.uuid4().hex}"
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secrets["aws_secret"])
    materializer = Materializer(instance)
    cookie, token = f"cookie-{uuid.uuid4().hex}", f"hf_{uuid.uuid4().hex}"
    secrets |= {"cookie": cookie, "token": token}
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t4102444800\tSID\t{cookie}\n")
    seen = []
    # first in line: the upstreams' own routes answer (and so hide) every request they serve
    packed_mirror.state.routes.insert(0, ("/", lambda handler, path: seen.append(str(handler.headers))))
    env = {**os.environ, "YOUTUBE_COOKIES_FILE": str(cookies), "HF_TOKEN": token}
    for variants in FAST_SETTINGS.values():  # short timeouts, and few attempts so that rows fail
        env |= {name: "2" if name.endswith("ATTEMPTS") else value for name, value in next(iter(variants.values())).items()}
    prepare(materializer, TESTED_SPECS)
    # faults on 30% of the requests: retries, failed rows and failed runs all write messages somewhere
    packed_mirror.set_faults(0.3, retry_after=0.1, stall_seconds=1.2, seed=3)
    # one fetcher per secret it is given (the HF sources share one token): a CLI run costs ~8 s of CPU
    resources = fetcher_resources()
    chosen = {next((f for f in FETCHERS if field in type(resources[f]).model_fields), None) for field in ("cookies_file", "token")}
    processes = []
    for fetcher in sorted(chosen - {None}):
        asset, key = packed.partitions[fetcher][0]
        processes.append(start_materialize(asset, key, tmp_path / f"{fetcher}.log", env))
    codes = [process.wait() for process in processes]
    packed_mirror.set_faults(0.0)

    assert packed_mirror.stats()["faults_injected"] > 0
    for field, secret in (("cookies_file", cookie), ("token", token)):
        if any(field in type(resources[f]).model_fields for f in chosen - {None}):
            assert any(secret in headers for headers in seen), f"the {field} was not sent upstream"
    files = [(path, path.read_bytes()) for folder in (dagster_home, tmp_path) for path in folder.rglob("*") if path.is_file() and path != cookies]
    if where == "s3":
        files += root_contents(root)
    assert any(str(where).endswith("parquet") for where, _ in files)  # manifests were written under ROOT
    leaks = [(path, name) for path, data in files for name, secret in secrets.items() if secret.encode() in data]
    output = capfd.readouterr()
    leaks += [("captured output", name) for name, secret in secrets.items() if secret in output.out + output.err]
    assert leaks == []
    print(f"\nsecrets: {len(processes)} CLI runs (exit codes {codes}) under 30% faults; no secret in {root}, {dagster_home} or any output")
