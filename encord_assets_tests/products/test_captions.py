import polars as pl

from encord_assets.infos.files import SAMPLE_INFOS_DIR


def test_captions_are_written_per_split_under_root(materializer, root):
    materializer.run("infos_text", "e-mm1_1m", raise_on_error=True)
    result = materializer.run("captions", "e-mm1_1m", raise_on_error=True)
    table = pl.read_parquet(root / "captions" / "e-mm1_1m.parquet")
    expected = pl.read_csv(SAMPLE_INFOS_DIR / "e-mm1_1m" / "infos" / "text.csv")
    assert table.columns == ["encord_text_id", "caption"]
    assert table.sort("encord_text_id").to_dicts() == expected.sort("encord_text_id").to_dicts()
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["captions"].value == expected.height
