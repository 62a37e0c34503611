"""`encord-assets reshard`: manifests follow their rows to the new shard count, nothing is fetched."""

import dataclasses

import dagster as dg
import polars as pl

from encord_assets.operations.reshard import reshard_source
from encord_assets.sources.partitions import partition_key_expr
from encord_assets.sources.registry import source_by_name


def verified_partitions(root, asset: str) -> set[str]:
    return {f.stem for f in (root / "_encord_assets" / "verified").glob(f"*/{asset}/*.parquet")}


def all_manifests(root, asset: str) -> pl.DataFrame:
    files = sorted((root / "_encord_assets" / "manifests" / asset).glob("*.parquet"))
    return pl.concat([pl.read_parquet(f).with_columns(file=pl.lit(f.stem)) for f in files])


def test_reshard_moves_manifest_rows_to_their_new_partitions_and_records_them(coco, root, sample_mirror):
    spec = source_by_name("image_coco")
    for key in coco.source_partitions(spec.name, "image"):
        coco.run(spec.name, key, raise_on_error=True)
    before = all_manifests(root, spec.name)
    requests_before = sample_mirror.state.requests
    assert verified_partitions(root, spec.name) == set(before["file"])  # the fill jobs ran the checks

    doubled = dataclasses.replace(spec, shards=spec.shards * 2)
    counts = reshard_source(coco.store, doubled, coco.instance)

    after = all_manifests(root, spec.name)
    rows = ["infos_file", "infos_row", "target", "outcome", "bytes", "sha256"]
    assert after.select(rows).sort(rows).equals(before.select(rows).sort(rows))
    expected = after.with_columns(key=partition_key_expr(pl.lit(doubled.shards)))["key"].str.replace("|", "__", literal=True)
    assert after["file"].to_list() == expected.to_list()
    assert counts["read"] == before["file"].n_unique() and counts["written"] > 0
    assert counts["removed"] == len(set(before["file"]) - set(after["file"]))
    assert counts["removed"] and verified_partitions(root, spec.name) <= set(after["file"])  # none left of a removed one
    moved = set(expected) - set(before["file"])
    assert moved, "doubling the shards moved no row"
    moved_keys = {stem.replace("__", "|") for stem in moved}
    assert all(coco.store.read_manifest(spec.name, key) is not None for key in moved_keys)
    assert coco.instance.get_materialized_partitions(dg.AssetKey(spec.name)) >= moved_keys
    assert sample_mirror.state.requests == requests_before  # nothing fetched
    assert reshard_source(coco.store, doubled, coco.instance)["written"] == 0  # a second pass changes nothing
