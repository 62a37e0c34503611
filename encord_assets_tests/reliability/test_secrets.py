"""Promise 7: the Hugging Face token and the YouTube cookies never appear in logs, metadata, manifests
or errors, even when every fetcher fails and retries (the real CLI, its output and Dagster's storage)."""

import os
import uuid

from encord_assets.sources.resources import fetcher_resources
from encord_assets_tests.reliability.support import (
    FAST_SETTINGS,
    FETCHERS,
    TESTED_SPECS,
    prepare,
    start_materialize,
)


def test_secrets_never_leak(packed, packed_mirror, materializer, root, dagster_home, tmp_path, capfd):
    cookie, token = f"cookie-{uuid.uuid4().hex}", f"hf_{uuid.uuid4().hex}"
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
    leaks = []
    for folder in (root, dagster_home, tmp_path):
        for path in folder.rglob("*"):
            if path.is_file() and path != cookies:
                data = path.read_bytes()
                leaks += [(path, name) for name, secret in (("cookie", cookie), ("token", token)) if secret.encode() in data]
    output = capfd.readouterr()
    leaks += [("captured output", name) for name, secret in (("cookie", cookie), ("token", token)) if secret in output.out + output.err]
    assert leaks == []
    print(f"\nsecrets: {len(processes)} CLI runs (exit codes {codes}) under 30% faults; no secret in {root}, {dagster_home} or any output")
