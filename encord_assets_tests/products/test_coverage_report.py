import polars as pl

from encord_assets.cli import main
from encord_assets.layout.paths import BOOKKEEPING_DIR
from encord_assets.materialize import Materializer
from encord_assets.sources.coco import coco_member


def test_the_report_and_status_show_coverage_reasons_and_a_problems_csv(
    sample_mirror, instance, root, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("ENCORD_PROGRESS_SECONDS", "0")  # a progress line per file, from the fetcher's threads
    materializer = Materializer(instance)
    for split in ("e-mm1_100m", "e-mm1_1m"):
        materializer.run("infos_image", split, raise_on_error=True)
    key = materializer.source_partitions("image_coco", "image")[0]
    rows = pl.read_parquet((root / BOOKKEEPING_DIR) / "tables" / "infos_image" / "*.parquet").filter(
        (pl.col("source") == "image_coco") & (pl.col("partition_key") == key)
    )
    gone = rows.row(0, named=True)
    sample_mirror.answer({f"/coco/{coco_member(gone['file_id'], 'train2017')}": 404})
    fetched = materializer.run("image_coco", key)
    assert fetched.success  # a permanently unavailable row does not fail the partition
    progress = [e.user_message for e in instance.all_logs(fetched.run_id) if e.user_message.startswith("progress:")]
    assert progress[-1].startswith(f"progress: {rows['target'].n_unique()}/{rows['target'].n_unique()} files (100.0%)")

    report = materializer.run("coverage_report", raise_on_error=True)
    metadata = report.asset_materializations_for_node("coverage_report")[0].metadata
    coverage = {r.data["source"]: r.data for r in metadata["coverage"].value.records if r.data["split"] == gone["split"]}
    assert coverage["image_coco"]["unavailable"] == 1
    assert [r.data["reason"] for r in metadata["unavailable_by_reason"].value.records] == ["http_404"]
    # the split's completeness, from the report's metadata alone
    routed = pl.read_parquet(root / "_encord_assets" / "tables" / "infos_image" / f"{gone['split']}.parquet").filter(pl.col("source").is_not_null())
    assert metadata[f"{gone['split']} not_fetched"].value == routed.height - rows.height
    expected_pct = round(100 * rows.height / routed.height, 1)  # on disk or unavailable: nothing more to do
    assert metadata[f"{gone['split']} complete_pct"].value == expected_pct
    (split_row,) = [r.data for r in metadata["completeness_by_split"].value.records if r.data["split"] == gone["split"]]
    assert (split_row["rows"], split_row["on_disk"], split_row["unavailable"]) == (routed.height, rows.height - 1, 1)
    problems = pl.read_csv(metadata["problems_csv"].value)
    assert problems.select("target", "outcome", "error_class").rows() == [(gone["target"], "unavailable", "http_404")]

    csv = tmp_path / "problems.csv"
    assert main(["status", "--root", str(root), "--problems-csv", str(csv)]) == 0
    printed = capsys.readouterr().out
    assert "image_coco" in printed and "unavailable by reason" in printed and "http_404" in printed
    assert "completeness by split" in printed
    assert pl.read_csv(csv).equals(problems)


def test_a_source_has_partitions_where_its_rows_are(sample_mirror, instance, root):
    materializer = Materializer(instance)
    materializer.infos("image", "audio")
    for name, modality in (("image_coco", "image"), ("audio_audioset", "audio"), ("audio_eshot", "audio")):
        with_rows = materializer.source_partitions(name, modality)
        shards = {key.split("|")[0] for key in with_rows}
        keys = materializer.defs.get_assets_def(name).partitions_def.get_partition_keys(dynamic_partitions_store=instance)
        splits = {"eshot"} if name == "audio_eshot" else {"e-mm1_100m", "e-mm1_1m"}  # EShot rows only in its own split
        assert set(keys) == {f"{shard}|{split}" for shard in shards for split in splits} and set(with_rows) <= set(keys)
