"""The bundled sample: every ImageNet, Flickr30k and VidGen-1M row placed; a second pass fetches nothing."""

import polars as pl

from encord_assets.sources.registry import SOURCES
from encord_assets_tests.sources.hf_setup import manifest

HF_FETCHERS = {"imagenet", "flickr30k", "vidgen"}


def materialize_hf_sources(materializer, root, infos: bool) -> list[tuple[str, str]]:
    specs = [spec for spec in SOURCES if spec.fetcher in HF_FETCHERS]
    for modality in sorted({spec.modality for spec in specs}) if infos else ():
        for split in ("e-mm1_100m", "e-mm1_1m"):
            materializer.run(f"infos_{modality}", split, raise_on_error=True)
    for index in sorted({spec.index for spec in specs if spec.index}):
        materializer.run(index, raise_on_error=True)
    done = []
    for spec in specs:
        for key in materializer.source_partitions(spec.name, spec.modality):
            materializer.run(spec.name, key, raise_on_error=True)
            done.append((spec.name, key))
    return done


def test_sample_rows_are_all_placed_and_a_second_pass_fetches_nothing(sample_mirror, sample_rows, materializer, root):
    partitions = materialize_hf_sources(materializer, root, infos=True)
    outcomes = pl.concat([manifest(root, name, key) for name, key in partitions])
    expected = sample_rows.filter(pl.col("source").is_in(["image_imagenet", "image_flickr30k", "video_vidgen1m"]))
    assert set(outcomes["source"]) == {"image_imagenet", "image_flickr30k", "video_vidgen1m"}
    assert outcomes.height == expected.height
    assert outcomes.filter(~pl.col("outcome").is_in(["placed", "already_present"])).height == 0

    sample_mirror.reset_stats()
    materialize_hf_sources(materializer, root, infos=False)
    assert sample_mirror.stats()["bytes_sent"] == 0
