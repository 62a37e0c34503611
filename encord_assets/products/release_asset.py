"""The release asset: one partition per release (a dynamic partition named by the release)."""

from pathlib import Path

import dagster as dg

from encord_assets.metadata import table_metadata
from encord_assets.products.link_assets import PRODUCTS
from encord_assets.products.releases import Filters, create_release, release_key, release_table
from encord_assets.infos.files import InfosDir
from encord_assets.store import DatasetStore

RELEASES = dg.DynamicPartitionsDefinition(name="releases")


class ReleaseConfig(dg.Config):
    splits: list[str] = []
    modalities: list[str] = []
    sources: list[str] = []
    licenses: list[str] = []
    exclude_licenses: list[str] = []


@dg.asset(
    partitions_def=RELEASES,
    group_name="releases",
    kinds={"parquet"},
    # lineage: a release snapshots the placed files and the products
    deps=list(PRODUCTS),
    description=(
        "An immutable snapshot of the placed files (optionally filtered by split, modality, source, license) with "
        "the groups, triplets and EShot categories, captions, infos checksums and an attribution table, under "
        "ROOT/_encord_assets/releases/<name>/. Add a partition named by the release, then materialize it."
    ),
)
def release(context: dg.AssetExecutionContext, config: ReleaseConfig, store: DatasetStore, infos_dir: InfosDir) -> dg.MaterializeResult:
    summary = create_release(store, Path(infos_dir.path), context.partition_key, Filters(**config.model_dump()))
    scalar = {k: v for k, v in summary.items() if isinstance(v, int | str)}
    return dg.MaterializeResult(
        metadata={
            **scalar,
            "filters": dg.MetadataValue.json(summary["filters"]),
            "attribution": table_metadata(release_table(store, context.partition_key, "attribution").collect()),
            "release": dg.MetadataValue.path(store.uri(release_key(context.partition_key, ""))),
        }
    )
