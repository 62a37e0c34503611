"""The `encord_manifest` asset: a release's Encord import manifests, one partition per release."""

import tempfile
from pathlib import Path

import dagster as dg

from encord_assets.layout.paths import bookkeeping_key
from encord_assets.products.encord.build import manifests
from encord_assets.products.encord.manifest import MAX_ITEMS
from encord_assets.products.encord.urls import EncordUrls
from encord_assets.products.release_asset import RELEASES, release
from encord_assets.store import DatasetStore


class EncordManifestConfig(dg.Config):
    formats: list[str] = ["json", "csv"]
    max_items: int = MAX_ITEMS


def manifest_key(name: str, file_name: str = "") -> str:
    return bookkeeping_key("encord", name, file_name)


@dg.asset(
    partitions_def=RELEASES,
    deps=[release],
    group_name="releases",
    kinds={"json", "csv"},
    description=(
        "The release's files as Encord cloud-storage import manifests (JSON with clientMetadata, and CSV), split at "
        "Encord's per-file limits, under ROOT/_encord_assets/encord/<release>/, with a report of what was left out "
        "(point clouds, rows whose file another entry lists) and the metadata schema."
    ),
)
def encord_manifest(context: dg.AssetExecutionContext, config: EncordManifestConfig, store: DatasetStore, encord_urls: EncordUrls) -> dg.MaterializeResult:
    name = context.partition_key
    with tempfile.TemporaryDirectory(prefix="encord_manifest_") as folder:
        report = manifests(store, name, None, encord_urls, Path(folder), tuple(config.formats), config.max_items)
        for path in sorted(Path(folder).iterdir()):
            store.write(manifest_key(name, path.name), lambda local, source=path: Path(local).write_bytes(source.read_bytes()))
    left_out = {f"left_out_{reason}": n for reason, n in report["left_out_rows"].items()}
    context.log.info(f"{name}: {report['entries']} in {len(report['files'])} file(s); left out {report['left_out_rows']}")
    return dg.MaterializeResult(
        metadata={
            **{f"entries_{kind}": n for kind, n in report["entries"].items()},
            **left_out,
            "files": dg.MetadataValue.json(report["files"]),
            "titles_shortened": report["titles_shortened"],
            "url_base": report["url_base"],
            "path": dg.MetadataValue.path(store.uri(manifest_key(name))),
        }
    )
