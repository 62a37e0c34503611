"""`encord-assets release create|list|show|pull|diff` and `encord-assets export`."""

import argparse
import json
import os
from pathlib import Path

import polars as pl

from encord_assets.products.releases import (
    ReleaseError,
    diff,
    exists,
    list_releases,
    release_info,
    release_table,
    resolve,
)
from encord_assets.settings import setting
from encord_assets.store import DatasetStore

PRINT = pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=200, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True)


def add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=setting("ROOT_DATA_PATH").read() if setting("ROOT_DATA_PATH").is_set else "data", help="a folder or s3://BUCKET/PREFIX (default $ROOT_DATA_PATH)")


def add_commands(commands) -> None:
    release = commands.add_parser("release", help="immutable, named snapshots of the placed files: create, list, show, pull, diff")
    actions = release.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="snapshot what is placed now (a run of the release asset, recorded in DAGSTER_HOME)")
    create.add_argument("name")
    for option, help_text in (
        ("--split", "keep only this split (repeatable)"),
        ("--modality", "keep only this modality: video, audio, image, points (repeatable)"),
        ("--source", "keep only this source asset (image_coco) or source dataset (COCO) (repeatable)"),
        ("--license", "keep only files under this dataset_license (repeatable)"),
        ("--exclude-license", "leave out files under this dataset_license (repeatable)"),
    ):
        create.add_argument(option, action="append", default=[], help=help_text)
    create.add_argument("--infos", type=Path, default=None, help="E-MM1 datasets/ folder (default $ENCORD_INFOS_DIR or the bundled sample)")
    create.add_argument("--dagster-home", type=Path, default=None, help="default $DAGSTER_HOME, else ./.dagster_home")
    listing = actions.add_parser("list", help="releases, most recent first")
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="a release's summary and attribution")
    show.add_argument("name", help="a release name or latest")
    pull = actions.add_parser("pull", help="lay a release out under DIR in the E-MM1 layout, every file's sha256 checked")
    pull.add_argument("name", help="a release name or latest")
    pull.add_argument("--to", type=Path, required=True)
    pull.add_argument("--only-annotations", action="store_true", help="only the release's tables, no files")
    pull.add_argument("--force-replace", action="store_true", help="lay out every file again, even those already correct")
    pull.add_argument("--remove-extra", action="store_true", help="delete files under DIR that are not in the release")
    pull.add_argument("--use-folders", action="store_true", help="one folder per split: DIR/<split>/<save_folder>/<dir>/<file>")
    pull.add_argument("--filter", default=None, help="SQL condition on the files table, e.g. \"modality = 'image'\"")
    difference = actions.add_parser("diff", help="files added, removed and changed between releases A and B")
    difference.add_argument("a")
    difference.add_argument("b")
    difference.add_argument("--json", action="store_true")
    for parser in (create, listing, show, pull, difference):
        add_root(parser)

    export = commands.add_parser("export", help="write a release in a format users load")
    export.add_argument("name", help="a release name or latest")
    export.add_argument("--format", required=True, choices=["folders", "csv", "yolo", "spacy_ner", "coco", "darwin_json"])
    export.add_argument("--extract-to", type=Path, required=True, help="the folder the export is written to")
    export.add_argument("--download-file", type=Path, default=Path("dataset.zip"), help="the zip of the export (with --keep-download-file)")
    export.add_argument("--keep-download-file", action="store_true", help="also write the export as a zip at --download-file")
    export.add_argument("--split", action="append", default=[], help="only this split (repeatable)")
    add_root(export)


def run(args: argparse.Namespace) -> int:
    store = DatasetStore(root=args.root)
    try:
        if args.command == "export":
            return run_export(store, args)
        return {"create": create, "list": show_list, "show": show, "pull": pull, "diff": show_diff}[args.action](store, args)
    except ReleaseError as error:
        print(f"error: {error}")
        return 2


def create(store: DatasetStore, args: argparse.Namespace) -> int:
    import dagster as dg

    from encord_assets.infos.files import SAMPLE_INFOS_DIR
    from encord_assets.operations.instance import install_instance_yaml
    from encord_assets.products.release_asset import RELEASES, release
    from encord_assets.products.releases import check_name
    from encord_assets.infos.files import InfosDir

    check_name(args.name)
    if exists(store, args.name):
        raise ReleaseError(f"release {args.name!r} already exists under {args.root}: releases are immutable; choose another name")
    home = (args.dagster_home or Path(os.environ.get("DAGSTER_HOME") or ".dagster_home")).absolute()
    install_instance_yaml(home)
    os.environ["DAGSTER_HOME"] = str(home)
    infos = args.infos or Path(setting("ENCORD_INFOS_DIR").read() or SAMPLE_INFOS_DIR)
    config = {"splits": args.split, "modalities": args.modality, "sources": args.source, "licenses": args.license, "exclude_licenses": args.exclude_license}
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(RELEASES.name, [args.name])
        result = dg.materialize(
            [release],
            partition_key=args.name,
            instance=instance,
            resources={"store": store, "infos_dir": InfosDir(path=str(infos))},
            run_config={"ops": {"release": {"config": config}}},
            raise_on_error=False,
        )
        if not result.success:
            # the name stays free for the next attempt
            instance.delete_dynamic_partition(RELEASES.name, args.name)
            print(f"release {args.name!r} failed (run {result.run_id} in {home})")
            return 1
    info = release_info(store, args.name)
    print(f"release {args.name}: {info['files']} files ({info['unique_files']} unique, {info['bytes']} bytes); run {result.run_id} in {home}")
    return 0


def show_list(store: DatasetStore, args: argparse.Namespace) -> int:
    releases = list_releases(store)
    if args.json:
        print(json.dumps(releases, indent=1))
        return 0
    for r in releases:
        print(f"{r['name']}\t{r['created_at']}\t{r['files']} files\t{r['bytes']} bytes\tfilters {json.dumps({k: v for k, v in r['filters'].items() if v})}")
    if not releases:
        print(f"no release under {args.root}")
    return 0


def show(store: DatasetStore, args: argparse.Namespace) -> int:
    info = release_info(store, args.name)
    print(json.dumps(info, indent=1))
    with PRINT:
        print(release_table(store, info["name"], "attribution").collect())
    return 0


def pull(store: DatasetStore, args: argparse.Namespace) -> int:
    from encord_assets.products.pull import pull_release

    report = pull_release(store, args.name, args.to, args.only_annotations, args.force_replace, args.remove_extra, args.use_folders, args.filter)
    print(f"release {report.release} -> {args.to}: " + ", ".join(f"{n} {k}" for k, n in sorted(report.counts.items())) + (f"; removed {report.removed} extra file(s)" if args.remove_extra else ""))
    for target, problem in report.problems[:50]:
        reason = "its content in ROOT no longer matches the release (not pulled)" if problem == "changed_in_root" else "it is no longer in ROOT"
        print(f"  {target}: {reason}")
    if report.problems:
        print(f"{len(report.problems)} file(s) not pulled")
    return 1 if report.problems else 0


def show_diff(store: DatasetStore, args: argparse.Namespace) -> int:
    tables = diff(store, args.a, args.b)
    if args.json:
        print(json.dumps({k: v.to_dicts() for k, v in tables.items()}, indent=1))
        return 0
    print(f"{resolve(store, args.a)} -> {resolve(store, args.b)}: " + ", ".join(f"{t.height} {k}" for k, t in tables.items()))
    with PRINT:
        for kind, table in tables.items():
            if table.height:
                print(f"\n{kind}:\n{table}")
    return 0


def run_export(store: DatasetStore, args: argparse.Namespace) -> int:
    from encord_assets.products.exports import export_release

    counts = export_release(store, args.name, args.format, args.extract_to, args.download_file if args.keep_download_file else None, args.split)
    problems = counts.pop("problems", [])
    print(json.dumps(counts, default=str))
    for target, problem in problems[:50]:
        print(f"  {target}: {problem} (not exported)")
    return 1 if problems else 0
