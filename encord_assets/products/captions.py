"""Captions have no upstream: they are the `caption` column of each split's text infos."""

import dagster as dg

from encord_assets.infos.assets import split_partitions
from encord_assets.layout.tables import TABLE_PATH
from encord_assets.lazy import pl


@dg.asset(
    partitions_def=split_partitions("text"),
    ins={"infos": dg.AssetIn("infos_text")},
    io_manager_key="table_io_manager",
    group_name="text",
    kinds={"parquet"},
    metadata={TABLE_PATH: "captions/{partition}.parquet"},
    description="Each split's captions (encord_text_id, caption) as ROOT/captions/<split>.parquet.",
)
def captions(context: dg.AssetExecutionContext, infos):
    table = infos.select("encord_text_id", "caption")
    stats = table.select(pl.len().alias("captions"), pl.col("caption").str.len_chars().mean().alias("mean_chars")).collect()
    context.add_output_metadata({"captions": stats["captions"].item(), "mean_caption_chars": round(stats["mean_chars"].item() or 0.0, 1)})
    return table
