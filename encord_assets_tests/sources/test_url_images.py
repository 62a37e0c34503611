import logging
import os
import subprocess
import threading
from pathlib import Path

import polars as pl
import pytest

from encord_assets.ledger import FetchLedger
from encord_assets.mirror.url_images import mirror_path, url_image
from encord_assets.sources.url_images import UrlImages, rewrite_rules, rewrite_url_expr
from encord_assets_tests.conftest import partition_work

GCC = "image_googleconceptualcaptions"


def test_rewrite_rules_replace_the_first_matching_prefix():
    rules = rewrite_rules("http://a.example/=>http://cache/a/  http://=>http://cache/any/")
    urls = pl.Series(["http://a.example/x.jpg", "http://b.example/y.jpg", "https://c.example/z.jpg"])
    rewritten = pl.select(rewrite_url_expr(pl.lit(urls), rules)).to_series().to_list()
    assert rewritten == ["http://cache/a/x.jpg", "http://cache/any/b.example/y.jpg", "https://c.example/z.jpg"]
    with pytest.raises(ValueError):
        rewrite_rules("http://no-arrow")


def test_img2dataset_outcomes_for_each_error_kind(sample_mirror, tmp_path, capfd, caplog):
    """Real img2dataset against the mirror; it runs from a worker thread here, so this also
    covers the child-process path (the SIGINT handler needs the main thread)."""
    kinds = ["ok", "404", "403", "429", "500", "503", "garbage", "stall"]
    urls = {kind: f"http://{kind}.example.com/img/{kind}.jpg?size=large" for kind in kinds}
    sample_mirror.answer(
        {mirror_path(urls[k]).split("?")[0]: (k if k == "garbage" else int(k)) for k in kinds if k not in ("ok", "stall")}
    )
    sample_mirror.set_faults(1.0, kinds=("stall",), path_prefix=mirror_path(urls["stall"]).split("?")[0], stall_seconds=10)
    rows = pl.DataFrame({"file_id": list(urls.values()), "target": [f"shared/image/{k}.jpg" for k in kinds]})
    log = FetchLedger(tmp_path / "staging")
    fetcher = UrlImages(
        processes=1,
        threads=8,
        timeout_seconds=4,
        retries=0,
        url_rewrite=os.environ["URL_IMAGES_REWRITE"],
        allowed_networks=os.environ["URL_IMAGES_ALLOWED_NETWORKS"],
    )
    worker = threading.Thread(target=fetcher.fetch, args=(partition_work("image_googleconceptualcaptions", rows, log, tmp_path / "root"),))
    capfd.readouterr()
    with caplog.at_level(logging.INFO):
        worker.start()
        worker.join()
    printed = capfd.readouterr()
    # img2dataset's own prints (and its workers') go to the step's log, not to the terminal
    assert "Starting the downloading of this file" not in printed.out + printed.err
    assert any(m.startswith("img2dataset output:\nStarting the downloading of this file") for m in caplog.messages)

    results = {r["target"].split("/")[-1][:-4]: r for r in log.results().iter_rows(named=True)}
    assert results.keys() == set(kinds)
    assert results["ok"]["outcome"] == "staged"
    assert Path(results["ok"]["staged_path"]).read_bytes() == url_image(urls["ok"])
    expected = {
        "404": ("unavailable", "http_404"),
        "403": ("unavailable", "http_403"),
        "429": ("failed", "http_429"),
        "500": ("failed", "http_500"),
        "503": ("failed", "http_503"),
        "garbage": ("unavailable", "undecodable"),
        "stall": ("failed", "timeout"),
    }
    assert {k: (results[k]["outcome"], results[k]["error_class"]) for k in expected} == expected


def test_gcc_partition_through_the_dagster_cli(sample_mirror, materializer, root):
    """`dagster asset materialize` runs the step in the main thread of a step subprocess
    (multiprocess executor), where img2dataset runs in-process; a re-run fetches nothing."""
    materializer.run("infos_image", "e-mm1_1m", raise_on_error=True)
    cli_key = materializer.source_partitions(GCC, "image")[0]
    done = subprocess.run(
        ["dagster", "asset", "materialize", "-m", "encord_assets.definitions", "--select", GCC, "--partition", cli_key],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "img2dataset in the step's process" in done.stderr + done.stdout

    infos = pl.read_parquet(root / "_encord_assets/tables/infos_image/*.parquet").filter(
        pl.col("source") == GCC, pl.col("partition_key") == cli_key
    )
    assert infos.height == 1
    url, target = infos.select("file_id", "target").row(0)
    assert (root / target).read_bytes() == url_image(url)
    sample_mirror.reset_stats()
    materializer.run(GCC, cli_key, raise_on_error=True)
    assert sample_mirror.stats()["bytes_sent"] == 0
