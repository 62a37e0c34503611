"""Throughput of the URL-image and tar.gz paths against baselines run in the same process.

1. Images/s of one Google Conceptual Captions partition materialized through its fill job
   (Dagster run, img2dataset through the vetting proxy, placement, manifest, then the checks)
   vs img2dataset run directly on the same URL list against the same mirror with the same
   settings: the asset alone (what img2dataset alone does: download and write the files; the
   run without its check steps) and the asset with its checks.
2. Members/s and MB/s of our streamed extraction of a tar.gz from the mirror's Hub
   (302 to its CDN) vs `tarfile` reading the same stream with no extraction.
3. Requests/s of urllib threads (as many as img2dataset's default connections) fetching mirror
   images through the vetting proxy vs straight from the mirror, and the CPU the proxy's process
   spends per request.
4. Seconds of an in-process no-op run (every file present, manifest written) of a GCC partition
   of `--noop-rows` rows against one of 80 rows, the asset alone and with its checks: what grows
   with a partition's rows.

    uv run python benchmarks/url_images_and_archives.py [--images 600] [--members 1500] [--requests 4000] [--noop-rows 8000]
"""

import argparse
import os
import tarfile
import tempfile
import time
from pathlib import Path

import polars as pl
import requests


def one_partition_of_gcc_rows(count: int, nth: int = 0) -> pl.DataFrame:
    """Infos rows of GCC that all fall in one `<shard>|e-mm1_1m` partition (the `nth` one)."""
    from encord_assets.sources.partitions import partition_key_expr
    from encord_assets.sources.registry import source_by_name

    shards = source_by_name("image_googleconceptualcaptions").shards
    candidates = pl.DataFrame({"n": range(count * shards * 2)}).with_columns(
        pl.format("gcc_{}.jpg", "n").alias("file_name"), pl.lit("e-mm1_1m").alias("split")
    )
    keyed = candidates.with_columns(pl.format("e-mm1_1m_only/image/{}", "file_name").alias("target")).with_columns(
        partition_key_expr(pl.lit(shards)).alias("key")
    )
    key = keyed["key"].unique(maintain_order=True)[nth]
    chosen = keyed.filter(pl.col("key") == key).head(count)
    return chosen.select(
        (pl.col("n") + 1).alias("encord_image_id"),
        pl.lit("Google Conceptual Captions").alias("source_dataset"),
        pl.lit("custom").alias("dataset_license"),
        pl.format("http://img{}.example.com/photos/2018/{}.jpg", pl.col("n") % 50, "n").alias("file_id"),
        "file_name",
        pl.lit("e-mm1_1m_only").alias("save_folder"),
    )


def bench_images(work: Path, count: int, link=None) -> dict:
    import dagster as dg

    from encord_assets.materialize import Materializer
    from encord_assets.mirror import url_images
    from encord_assets.mirror.server import Link, Mirror
    from encord_assets.sources.url_images import rewrite_rules, rewrite_url_expr, run_img2dataset

    infos = one_partition_of_gcc_rows(count)
    (work / "infos/e-mm1_1m/infos").mkdir(parents=True)
    infos.write_csv(work / "infos/e-mm1_1m/infos/image.csv")
    (work / "home").mkdir()
    with Mirror(work / "mirror", link=link or Link()) as mirror:
        url_images.routes(mirror)
        settings = url_images.env(mirror)
        os.environ.update(
            {"ROOT_DATA_PATH": str(work / "root"), "DAGSTER_HOME": str(work / "home"), "ENCORD_INFOS_DIR": str(work / "infos"), **settings}
        )
        processes, threads = int(os.environ.get("URL_IMAGES_PROCESSES", 2)), int(os.environ.get("URL_IMAGES_THREADS", 32))

        urls = infos.select(rewrite_url_expr(pl.col("file_id"), rewrite_rules(settings["URL_IMAGES_REWRITE"])).alias("url"))
        urls.write_parquet(work / "urls.parquet")
        started = time.monotonic()
        run_img2dataset(
            print,
            url_list=str(work / "urls.parquet"), input_format="parquet", url_col="url", output_folder=str(work / "direct"),
            output_format="files", processes_count=processes, thread_count=threads,
            number_sample_per_shard=max(1, -(-count // processes)), resize_mode="no", skip_reencode=True,
            timeout=10, retries=1, enable_wandb=False, extract_exif=False,
        )
        direct = time.monotonic() - started
        direct_files = len(list((work / "direct").glob("*/*.jpg")))

        with dg.DagsterInstance.get() as instance:
            materializer = Materializer(instance)
            materializer.run("infos_image", "e-mm1_1m", raise_on_error=True)
            (key,) = materializer.source_partitions("image_googleconceptualcaptions", "image")
            started = time.monotonic()
            result = materializer.run("image_googleconceptualcaptions", key, raise_on_error=True)
            ours = time.monotonic() - started
            # the fill job runs the asset, then its checks, one step after another
            checks = sum(
                step.end_time - step.start_time
                for step in instance.get_run_step_stats(result.run_id)
                if step.step_key != "image_googleconceptualcaptions"
            )
        (event,) = result.get_asset_materialization_events()
        steps = {name: event.materialization.metadata[f"{name}_seconds"].value for name in ("fetch", "place")}
        placed = len(list((work / "root/e-mm1_1m_only/image").glob("*.jpg")))
    assert placed == direct_files == count, (placed, direct_files, count)
    return {"images": count, "ours_s": ours, "checks": checks, "direct_s": direct, **steps}


def bench_proxy(work: Path, count: int, threads: int = 64) -> dict:
    import resource
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from encord_assets.mirror import url_images
    from encord_assets.mirror.server import Mirror
    from encord_assets.sources.address_policy import AddressPolicy, VettingProxy

    with Mirror(work) as mirror:
        url_images.routes(mirror)
        urls = [f"{mirror.url}/urlimages/http/img{n % 50}.example.com/{n}.jpg" for n in range(count)]

        def fetch_all(opener: urllib.request.OpenerDirector) -> float:
            def fetch(url: str) -> int:
                with opener.open(url, timeout=20) as answer:
                    return len(answer.read())

            started = time.monotonic()
            with ThreadPoolExecutor(threads) as pool:
                assert all(pool.map(fetch, urls))
            return time.monotonic() - started

        direct = fetch_all(urllib.request.build_opener(urllib.request.ProxyHandler({})))
        # the proxy is this process's only child reaped meanwhile
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with VettingProxy(AddressPolicy.from_setting("127.0.0.1/32"), 20) as proxy:
            proxied = fetch_all(urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy.url})))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"requests": count, "threads": threads, "direct_s": direct, "proxied_s": proxied, "cpu_ms": cpu / count * 1000}


def bench_noop(work: Path, rows: int, small: int) -> dict:
    """In-process no-op runs of two complete GCC partitions (every file present, manifest written),
    one of `rows` rows and one of `small`: the asset alone, and with the checks its fill job runs
    (the first run of the checks hashes and decodes every file; the next ones only files changed since)."""
    import dagster as dg

    from encord_assets.materialize import QUIET, Materializer
    from encord_assets.mirror.media import jpeg_bytes

    infos = pl.concat([one_partition_of_gcc_rows(rows, 0), one_partition_of_gcc_rows(small, 1)])
    (work / "infos/e-mm1_1m/infos").mkdir(parents=True)
    infos.write_csv(work / "infos/e-mm1_1m/infos/image.csv")
    (work / "home").mkdir()
    images = work / "root/e-mm1_1m_only/image"
    images.mkdir(parents=True)
    photo = jpeg_bytes("placed earlier")
    for name in infos["file_name"]:
        (images / name).write_bytes(photo)
    # placed a while ago: a file modified a moment before a check is not remembered as verified
    settled = time.time_ns() - 60 * 10**9
    for name in infos["file_name"]:
        os.utime(images / name, ns=(settled, settled))
    os.environ.update({"ROOT_DATA_PATH": str(work / "root"), "DAGSTER_HOME": str(work / "home"), "ENCORD_INFOS_DIR": str(work / "infos")})
    asset = "image_googleconceptualcaptions"
    seconds: dict[tuple[str, int], float] = {}
    with dg.DagsterInstance.get() as instance:
        materializer = Materializer(instance)
        materializer.run("infos_image", "e-mm1_1m", raise_on_error=True)

        def asset_alone(key: str) -> dg.ExecuteInProcessResult:
            return dg.materialize(
                materializer.defs.assets, selection=[asset], partition_key=key, instance=instance,
                resources=materializer.defs.resources, run_config=QUIET,
            )

        def with_checks(key: str) -> dg.ExecuteInProcessResult:
            return materializer.run(asset, key, raise_on_error=True)

        for key in materializer.source_partitions(asset, "image"):
            # the first run finds every file present and writes the manifest; the next ones are no-ops
            asset_alone(key)
            # the first run with checks verifies every file; the next ones skip files unchanged since
            for label, run, repeats in (("asset", asset_alone, 3), ("checks_first", with_checks, 1), ("checks", with_checks, 3)):
                best = float("inf")
                for _ in range(repeats):
                    started = time.monotonic()
                    result = run(key)
                    best = min(best, time.monotonic() - started)
                (event,) = result.get_asset_materialization_events()
                metadata = event.materialization.metadata
                assert metadata["rows_already_present"].value == metadata["rows"].value and metadata["requests"].value == 0
                assert all(check.passed for check in result.get_asset_check_evaluations())
                seconds[label, metadata["rows"].value] = best
    return {"rows": rows, "small": small, **{f"{label}_{n}": value for (label, n), value in seconds.items()}}


def bench_archive(work: Path, members: int, repeats: int = 3) -> dict:
    from encord_assets.ledger import FetchLedger
    from encord_assets.mirror import hf_hub
    from encord_assets.mirror.openshape import point_cloud, write_tar_gz
    from encord_assets.mirror.server import Mirror
    from encord_assets.settings import OPENSHAPE_REPO_ID as REPO_ID
    from encord_assets.sources.openshape import OpenShapePoints

    ids = [f"{n:08x}" for n in range(members)]
    write_tar_gz(hf_hub.repo_dir(work / "hub", REPO_ID) / "ABO.tar.gz", {f"ABO/{i[:2]}/{i}.npy": point_cloud(i) for i in ids})
    member_bytes = members * len(point_cloud(ids[0]))
    results = {"members": members, "member_mb": member_bytes / 1e6}
    with Mirror(work / "hub") as mirror:
        hf_hub.routes(mirror)
        source = OpenShapePoints(endpoint=mirror.url)
        commit = source.index_revision()
        url = f"{mirror.url}/datasets/{REPO_ID}/resolve/{commit}/ABO.tar.gz"

        def list_members() -> int:
            with requests.get(url, stream=True) as response, tarfile.open(fileobj=response.raw, mode="r|gz") as archive:
                return sum(1 for _ in archive)

        def extract(label: str, share: float, attempt: int) -> None:
            wanted = {i: [f"shared/points/{i}.npy"] for i in ids[:: round(1 / share)]}
            source.read_archive(commit, "ABO.tar.gz", wanted, FetchLedger(work / f"staging-{label}-{attempt}"))
            assert not wanted

        # best of `repeats`, the runs interleaved so that load from elsewhere hits all alike
        timings: dict[str, list[float]] = {"baseline": [], "all": [], "1%": []}
        for attempt in range(repeats):
            started = time.monotonic()
            assert list_members() == members
            timings["baseline"].append(time.monotonic() - started)
            for label, share in (("all", 1.0), ("1%", 0.01)):
                started = time.monotonic()
                extract(label, share, attempt)
                timings[label].append(time.monotonic() - started)
        results |= {label: min(values) for label, values in timings.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--members", type=int, default=1500)
    parser.add_argument("--noop-rows", type=int, default=8000)
    parser.add_argument("--requests", type=int, default=4000, help="requests through the vetting proxy")
    parser.add_argument("--mbit", type=float, default=0.0, help="URL images over a link of this bandwidth (0: raw loopback)")
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="... and this round trip")
    parser.add_argument("--parts", default="images,archive,proxy,noop")
    args = parser.parse_args()
    from encord_assets.mirror.server import Link

    parts = set(args.parts.split(","))
    link = Link(bandwidth_bytes_per_second=args.mbit * 1e6 / 8, rtt_seconds=args.rtt_ms / 1000)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HF_HOME"] = str(Path(tmp) / "hf_home")
        noop = bench_noop(Path(tmp) / "noop", args.noop_rows, 80) if "noop" in parts else None
        archive = bench_archive(Path(tmp) / "archive", args.members) if "archive" in parts else None
        images = bench_images(Path(tmp) / "images", args.images, link) if "images" in parts else None
        proxy = bench_proxy(Path(tmp) / "proxy", args.requests) if "proxy" in parts else None
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'measure':58} {'ours':>10} {'baseline':>10} {'ratio':>7}")
    if images:
        shaped = f", {args.mbit:g} Mbit/s {args.rtt_ms:g} ms" if args.mbit or args.rtt_ms else ""
        count, direct = images["images"], images["direct_s"]
        print(f"GCC partition, images/s ({count:,} URLs{shaped}) vs img2dataset direct")
        for what, seconds in (("asset alone", images["ours_s"] - images["checks"]), ("asset and its checks", images["ours_s"])):
            print(f"{'  ' + what:58} {count / seconds:10.1f} {count / direct:10.1f} {direct / seconds:7.2f}")
        rest = images["ours_s"] - images["fetch"] - images["place"] - images["checks"]
        print(
            f"  ours {images['ours_s']:.1f} s: fetch {images['fetch']:.1f} (img2dataset {direct:.1f} s alone), "
            f"place {images['place']:.1f}, checks {images['checks']:.1f}, rest of the run {rest:.1f}"
        )
    if proxy:
        name = f"vetting proxy, requests/s ({proxy['requests']:,}, {proxy['threads']} urllib threads) vs direct"
        ours, direct = proxy["requests"] / proxy["proxied_s"], proxy["requests"] / proxy["direct_s"]
        print(f"{name:58} {ours:10.0f} {direct:10.0f} {ours / direct:7.2f}")
        print(f"  the proxy's process: {proxy['cpu_ms']:.3f} ms of CPU per request (its start-up included)")
    if noop:
        for label, what in (("asset", "asset alone"), ("checks_first", "with its checks, first"), ("checks", "with its checks, next")):
            name = f"no-op run, {what}, s ({noop['rows']:,} rows vs {noop['small']})"
            big, small = noop[f"{label}_{noop['rows']}"], noop[f"{label}_{noop['small']}"]
            print(f"{name:58} {big:10.2f} {small:10.2f} {big / small:7.2f}")
    if archive:
        for label in ("all", "1%"):
            name = f"tar.gz, extract {label} of {archive['members']} members"
            print(f"{name + ', members/s vs tarfile listing':58} {archive['members'] / archive[label]:10.0f} {archive['members'] / archive['baseline']:10.0f} {archive['baseline'] / archive[label]:7.2f}")
            print(f"{name + ', MB/s vs tarfile listing':58} {archive['member_mb'] / archive[label]:10.1f} {archive['member_mb'] / archive['baseline']:10.1f} {archive['baseline'] / archive[label]:7.2f}")


if __name__ == "__main__":
    main()
