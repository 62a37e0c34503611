"""The `encord-assets` command: demo, status, instance, mirror, objectstore, release, export, encord-manifest, encord-import."""

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="encord-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the whole pipeline against the local upstream mirror")
    demo.add_argument("--infos", type=Path, default=None, help="E-MM1 datasets/ folder (default: bundled sample)")
    demo.add_argument("--root", default="data", help="ROOT of the layout: a folder or s3://BUCKET/PREFIX (default ./data)")
    demo.add_argument("--dagster-home", type=Path, default=Path(".dagster_home"), help="Dagster instance folder")
    demo.add_argument("--mirror-dir", type=Path, default=Path(".mirror"), help="where the mirror's files are built")

    status = commands.add_parser("status", help="coverage tables from the manifests under ROOT (as the coverage_report asset)")
    status.add_argument("--root", default="data", help="a folder or s3://BUCKET/PREFIX")
    status.add_argument("--problems-csv", type=Path, default=None, help="also write unavailable/failed rows here")

    instance = commands.add_parser("instance", help="install the project's dagster.yaml and pool limits into DAGSTER_HOME")
    instance.add_argument("--dagster-home", type=Path, default=None, help="default: $DAGSTER_HOME")

    mirror = commands.add_parser("mirror", help="build and serve the upstream mirror for an infos folder")
    mirror.add_argument("--infos", type=Path, default=None)
    mirror.add_argument("--mirror-dir", type=Path, default=Path(".mirror"))
    mirror.add_argument("--port", type=int, default=0)

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

        return run_demo(args.infos, args.root, args.dagster_home, args.mirror_dir)
    if args.command == "status":
        from encord_assets.products.coverage_report import print_status
        from encord_assets.store import DatasetStore

        print_status(DatasetStore(root=args.root), args.problems_csv)
        return 0
    if args.command == "instance":
        from encord_assets.operations.instance import prepare_instance

        return prepare_instance(args.dagster_home)
    if args.command == "mirror":
        from encord_assets.demo import normalized_rows
        from encord_assets.infos.files import SAMPLE_INFOS_DIR
        from encord_assets.mirror.build import attach, build_content
        from encord_assets.mirror.server import Mirror

        build_content(normalized_rows(args.infos or SAMPLE_INFOS_DIR), args.mirror_dir)
        with Mirror(args.mirror_dir, port=args.port) as served:
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
