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
    problems = pl.read_csv(metadata["problems_csv"].value)
    assert problems.select("target", "outcome", "error_class").rows() == [(gone["target"], "unavailable", "http_404")]

    csv = tmp_path / "problems.csv"
    assert main(["status", "--root", str(root), "--problems-csv", str(csv)]) == 0
    printed = capsys.readouterr().out
    assert "image_coco" in printed and "unavailable by reason" in printed and "http_404" in printed
    assert pl.read_csv(csv).equals(problems)
