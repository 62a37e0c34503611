"""SPACY_NER: `<split>.json`, an array of `{id, name, text, annotations: [{start, end, label}]}` per caption
of the release's splits, and `config.json` (`splits`, `colors`). E-MM1 has no entity spans: annotations
are empty."""

import json
from pathlib import Path

import polars as pl

from encord_assets.products.releases import release_table
from encord_assets.store import DatasetStore

BATCH_ROWS = 50_000


def export(store: DatasetStore, name: str, files: pl.LazyFrame, out: Path, splits: list[str] | None) -> dict:
    captions = release_table(store, name, "captions")
    if splits:
        captions = captions.filter(pl.col("split").is_in(splits))
    names = sorted(captions.select(pl.col("split").unique()).collect()["split"].to_list())
    counts = {}
    for split in names:
        entries = (
            captions.filter(pl.col("split") == split)
            .sort("encord_text_id")
            .select(
                pl.struct(
                    pl.col("encord_text_id").alias("id"), pl.col("encord_text_id").cast(pl.String).alias("name"), pl.col("caption").alias("text")
                ).struct.json_encode().str.strip_suffix("}") + pl.lit(',"annotations":[]}')
            )
        )
        counts[split] = 0
        # one JSON array, streamed in batches: no Python object per caption
        with open(out / f"{split}.json", "w", encoding="utf-8") as f:
            f.write("[")
            for batch in entries.collect_batches(chunk_size=BATCH_ROWS):
                lines = batch.to_series()
                f.write(("," if counts[split] else "") + "\n" + ",\n".join(lines))
                counts[split] += len(lines)
            f.write("\n]\n")
    (out / "config.json").write_text(json.dumps({"splits": names, "colors": {}}, indent=2) + "\n")
    return {"captions": counts}
