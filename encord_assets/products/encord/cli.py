"""`encord-assets encord-manifest` (write Encord import manifests) and `encord-assets encord-import` (start an import)."""

import argparse
import json
from pathlib import Path
from uuid import UUID

from encord_assets.products.encord.manifest import MAX_ITEMS, MAX_TITLE_CHARS, ManifestError
from encord_assets.products.encord.urls import PROVIDERS, EncordUrls, ObjectUrlError
from encord_assets.products.releases import ReleaseError
from encord_assets.settings import current_values, setting

DEFAULT_DOMAIN = "https://api.encord.com"


def add_commands(commands) -> None:
    urls = EncordUrls(**current_values("encord_urls"))  # the options' defaults, from the settings
    root = setting("ROOT_DATA_PATH")
    manifest = commands.add_parser("encord-manifest", help="a release's files as the JSON or CSV that Encord's cloud-storage import reads")
    manifest.add_argument("name", nargs="?", help="a release name or latest (or --from-layout)")
    manifest.add_argument("--from-layout", action="store_true", help="every file placed now instead of a release")
    manifest.add_argument("--format", choices=["json", "csv"], default="json")
    manifest.add_argument("--out", type=Path, required=True, help="folder the manifests are written to")
    manifest.add_argument("--root", default=root.read() if root.is_set else "data", help="a folder or s3://BUCKET/PREFIX (default $ROOT_DATA_PATH)")
    manifest.add_argument("--object-url-base", default=urls.object_url_base, help="the URL ROOT was uploaded to (needed for a local ROOT)")
    manifest.add_argument("--max-items", type=int, default=MAX_ITEMS, help=f"items per file (Encord's limit, {MAX_ITEMS}, is the default)")
    manifest.add_argument("--url-provider", choices=PROVIDERS, default=urls.provider, help="object URL form of an s3:// ROOT")
    manifest.add_argument("--region", default=urls.region, help="bucket region (aws, otc)")
    manifest.add_argument("--azure-account", default=urls.azure_account, help="storage account (azure)")
    manifest.add_argument("--endpoint-url", default=urls.endpoint_url, help="S3-compatible endpoint (endpoint: path-style URLs)")
    manifest.add_argument("--infos", type=Path, default=None, help="with --from-layout: E-MM1 datasets/ folder (default $ENCORD_INFOS_DIR or the bundled sample)")

    start = commands.add_parser("encord-import", help="start Encord's import of a JSON manifest into a dataset (needs the 'encord' extra)")
    start.add_argument("manifest", type=Path)
    start.add_argument("--dataset", required=True, help="the dataset hash")
    start.add_argument("--integration", required=True, help="the title of the cloud integration that reads the bucket")
    start.add_argument("--key-file", type=Path, required=True, help="the private key registered with Encord (read by the SDK, never printed or stored)")
    start.add_argument("--folder", default=None, help="storage folder UUID, for datasets that are not mirrors of a folder")
    start.add_argument("--domain", default=DEFAULT_DOMAIN, help=f"Encord API (default {DEFAULT_DOMAIN}; https://api.us.encord.com for the US platform)")


def run(args: argparse.Namespace) -> int:
    try:
        return run_manifest(args) if args.command == "encord-manifest" else run_import(args)
    except (ManifestError, ObjectUrlError, ReleaseError) as error:
        print(f"error: {error}")
        return 2


def run_manifest(args: argparse.Namespace) -> int:
    from encord_assets.infos.files import SAMPLE_INFOS_DIR
    from encord_assets.products.encord.build import manifests
    from encord_assets.store import DatasetStore

    if (args.name is None) == (not args.from_layout):
        raise ManifestError("name a release (or latest), or pass --from-layout, not both")
    urls = EncordUrls(
        provider=args.url_provider, region=args.region, azure_account=args.azure_account,
        endpoint_url=args.endpoint_url, object_url_base=args.object_url_base,
    )
    infos = args.infos or Path(setting("ENCORD_INFOS_DIR").read() or SAMPLE_INFOS_DIR)
    report = manifests(DatasetStore(root=args.root), args.name, infos, urls, args.out, (args.format,), args.max_items)
    entries = ", ".join(f"{n} {kind}" for kind, n in report["entries"].items())
    print(f"{len(report['files'])} file(s) in {args.out}: {entries}")
    for reason, n in report["left_out_rows"].items():
        if n:
            print(f"  left out: {n} row(s) {reason}")
    if report["titles_shortened"]:
        print(f"  {report['titles_shortened']} title(s) shortened to {MAX_TITLE_CHARS} characters (listed in the report)")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from encord_assets.products.encord.sdk import validate

    if not args.key_file.is_file():
        raise ManifestError(f"--key-file {args.key_file}: no such file; the import needs the private key registered with Encord")
    if not args.manifest.is_file() or args.manifest.suffix != ".json":
        raise ManifestError(f"{args.manifest}: not a JSON manifest (the SDK starts imports of JSON files)")
    try:
        folder = UUID(args.folder) if args.folder else None
    except ValueError:
        raise ManifestError(f"--folder {args.folder!r}: not a UUID") from None
    try:
        manifest = json.loads(args.manifest.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{args.manifest}: not JSON ({error})") from None
    try:
        import encord  # noqa: F401
    except ImportError:
        raise ManifestError("the Encord SDK is not installed: uv sync --extra encord") from None
    try:
        validate(manifest)
    except Exception as error:
        raise ManifestError(f"{args.manifest}: {error}") from None
    from encord import EncordUserClient

    try:
        client = EncordUserClient.create_with_ssh_private_key(ssh_private_key_path=str(args.key_file), domain=args.domain)
        found = client.get_cloud_integrations(filter_integration_titles=[args.integration])
        if not found:
            raise ManifestError(f"no cloud integration titled {args.integration!r} is visible to this key")
        dataset = client.get_dataset(args.dataset)
        job = dataset.add_private_data_to_dataset_start(str(found[0].id), str(args.manifest), ignore_errors=True, folder=folder)
    except ManifestError:
        raise
    except Exception as error:
        # the SDK's own message (a bad key, a refused request), never the key itself
        print(f"error: Encord SDK: {type(error).__name__}: {error}")
        return 1
    print(f"import started: job {job} (dataset {args.dataset}, integration {args.integration!r}); follow it in Encord's web app")
    return 0
