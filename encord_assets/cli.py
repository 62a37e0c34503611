"""The `encord-assets` command: demo, dev, status, instance, reshard, mirror, objectstore, settings, release, export,
encord-manifest, encord-import."""

import argparse
import sys
import time
from pathlib import Path


def add_openimages_options(command: argparse.ArgumentParser) -> None:
    """The Open Images emulation `demo` and `dev` serve beside the E-MM1 upstreams."""
    command.add_argument(
        "--openimages", type=Path, default=None, help="folder of official-format Open Images CSVs (default: the bundled sample)"
    )
    command.add_argument("--openimages-classes", default=None, help='Open Images classes, names or MIDs (default with the sample: "Handgun,Cat")')
    command.add_argument("--no-openimages", action="store_true", help="leave Open Images out")


def openimages_choice(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Path | None, str]:
    """(folder of Open Images CSVs or None, classes) from `add_openimages_options`."""
    from encord_assets.mirror import openimages

    if args.openimages is not None and args.openimages_classes is None:
        parser.error("--openimages DIR needs --openimages-classes")
    folder = None if args.no_openimages else (args.openimages or openimages.SAMPLE_DIR)
    return folder, args.openimages_classes or openimages.SAMPLE_CLASSES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="encord-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the whole pipeline against the local upstream mirror")
    demo.add_argument("--infos", type=Path, default=None, help="E-MM1 datasets/ folder (default: bundled sample)")
    demo.add_argument("--root", default="data", help="ROOT of the layout: a folder or s3://BUCKET/PREFIX (default ./data)")
    demo.add_argument("--dagster-home", type=Path, default=Path(".dagster_home"), help="Dagster instance folder")
    demo.add_argument("--mirror-dir", type=Path, default=Path(".mirror"), help="where the mirror's files are built")
    add_openimages_options(demo)

    dev = commands.add_parser("dev", help="the web UI (dagster dev) against the local upstream mirror, offline")
    dev.add_argument("--infos", type=Path, default=None, help="E-MM1 datasets/ folder (default: bundled sample)")
    dev.add_argument("--root", type=Path, default=Path("data"), help="ROOT of the layout (default ./data)")
    dev.add_argument("--dagster-home", type=Path, default=Path(".dagster_home"), help="Dagster instance folder")
    dev.add_argument("--mirror-dir", type=Path, default=Path(".mirror"), help="where the mirror's files are built")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000, help="web UI port")
    add_openimages_options(dev)

    status = commands.add_parser("status", help="coverage tables from the manifests under ROOT (as the coverage_report asset)")
    status.add_argument("--root", default="data", help="a folder or s3://BUCKET/PREFIX")
    status.add_argument("--problems-csv", type=Path, default=None, help="also write unavailable/failed rows here")

    instance = commands.add_parser("instance", help="install the project's dagster.yaml and pool limits into DAGSTER_HOME")
    instance.add_argument("--dagster-home", type=Path, default=None, help="default: $DAGSTER_HOME")

    reshard = commands.add_parser("reshard", help="re-key the manifests of sources whose shard count changed (nothing is fetched)")
    reshard.add_argument("--root", required=True, help="a folder or s3://BUCKET/PREFIX")
    reshard.add_argument("--dagster-home", type=Path, default=None, help="default: $DAGSTER_HOME")

    mirror = commands.add_parser("mirror", help="build and serve the upstream mirror for an infos folder")
    mirror.add_argument("--infos", type=Path, default=None)
    mirror.add_argument("--mirror-dir", type=Path, default=Path(".mirror"))
    mirror.add_argument("--port", type=int, default=0)
    mirror.add_argument("--openimages", type=Path, default=None, help="Open Images CSVs to serve (default: the bundled sample)")

    settings = commands.add_parser("settings", help="the environment variables the project reads, as a markdown table")
    settings.add_argument("--readme", type=Path, default=None, help="regenerate the settings tables of this README instead")
    objectstore = commands.add_parser(
        "objectstore", help="start a local S3-compatible server (moto, in memory) with a bucket, for an s3:// ROOT"
    )
    objectstore.add_argument("--dir", type=Path, required=True, help="where the server writes its request and server logs")
    objectstore.add_argument("--port", type=int, default=0, help="default: a free port")
    objectstore.add_argument("--bucket", default="e-mm1", help="the bucket to create (default e-mm1)")

    from encord_assets.products.encord import cli as encord_cli
    from encord_assets.products.release_cli import add_commands

    add_commands(commands)
    encord_cli.add_commands(commands)

    args = parser.parse_args(argv)
    if args.command in ("release", "export"):
        from encord_assets.products.release_cli import run

        return run(args)
    if args.command in ("encord-manifest", "encord-import"):
        return encord_cli.run(args)
    if args.command == "demo":
        from encord_assets.demo import run_demo

        return run_demo(args.infos, args.root, args.dagster_home, args.mirror_dir, *openimages_choice(parser, args))
    if args.command == "dev":
        from encord_assets.dev import run_dev

        return run_dev(args.infos, args.root, args.dagster_home, args.mirror_dir, args.host, args.port, *openimages_choice(parser, args))
    if args.command == "status":
        from encord_assets.products.coverage_report import print_status
        from encord_assets.store import DatasetStore

        print_status(DatasetStore(root=args.root), args.problems_csv)
        return 0
    if args.command == "instance":
        from encord_assets.operations.instance import prepare_instance

        return prepare_instance(args.dagster_home)
    if args.command == "settings":
        from encord_assets.settings import SETTINGS, markdown_table, update_readme

        if args.readme:
            print(f"{args.readme}: {'updated' if update_readme(args.readme) else 'already current'}")
        else:
            print(markdown_table(sorted({s.section for s in SETTINGS})))
        return 0
    if args.command == "reshard":
        from encord_assets.operations.reshard import run_reshard

        return run_reshard(args.root, args.dagster_home)
    if args.command == "mirror":
        from encord_assets.demo import normalized_rows
        from encord_assets.infos.files import SAMPLE_INFOS_DIR
        from encord_assets.mirror.build import attach, build_content
        from encord_assets.mirror.server import Link, Mirror
        from encord_assets.settings import current_values

        from encord_assets.mirror import openimages

        build_content(normalized_rows(args.infos or SAMPLE_INFOS_DIR), args.mirror_dir)
        openimages.build(args.openimages or openimages.SAMPLE_DIR, args.mirror_dir)
        link = Link(**current_values("mirror_link"))
        with Mirror(args.mirror_dir, port=args.port, link=link) as served:
            for name, value in attach(served).items():
                print(f"export {name}={value}", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
    if args.command == "objectstore":
        from encord_assets.store.objectstore import serve_here

        return serve_here(args.dir, args.port, args.bucket)
    return 2


if __name__ == "__main__":
    sys.exit(main())
