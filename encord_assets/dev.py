"""`encord-assets dev`: the web UI against the local mirror, so a newcomer can click *Materialize* offline.

Builds the mirror for the infos and the Open Images emulation (as the demo does), serves it,
prepares the instance (dagster.yaml, pool limits) and runs `dagster dev` with every upstream
setting pointed at the mirror, until interrupted.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg

from encord_assets.demo import normalized_rows, serve_openimages
from encord_assets.infos.files import SAMPLE_INFOS_DIR
from encord_assets.mirror import openimages
from encord_assets.mirror.build import attach, build_content
from encord_assets.mirror.server import Mirror
from encord_assets.operations.instance import install_instance_yaml, set_pool_limits


def run_dev(
    infos_dir: Path | None,
    root: Path,
    dagster_home: Path,
    mirror_dir: Path,
    host: str,
    port: int,
    openimages_dir: Path | None = openimages.SAMPLE_DIR,
    openimages_classes: str = openimages.SAMPLE_CLASSES,
) -> int:
    infos_dir = Path(infos_dir or SAMPLE_INFOS_DIR).absolute()
    root, dagster_home, mirror_dir = root.absolute(), dagster_home.absolute(), mirror_dir.absolute()
    install_instance_yaml(dagster_home)
    build_content(normalized_rows(infos_dir), mirror_dir)
    chosen_classes = serve_openimages(openimages_dir, openimages_classes, mirror_dir)
    with Mirror(mirror_dir) as mirror:
        settings = {**attach(mirror), **chosen_classes}
        env = {**os.environ, "ROOT_DATA_PATH": str(root), "ENCORD_INFOS_DIR": str(infos_dir), "DAGSTER_HOME": str(dagster_home), **settings}
        os.environ["DAGSTER_HOME"] = str(dagster_home)
        with dg.DagsterInstance.get() as instance:
            set_pool_limits(instance)
        print(f"upstream mirror: {mirror.url} (every upstream setting points at it)", flush=True)
        print(f"infos: {infos_dir}\nROOT: {root}\nDAGSTER_HOME: {dagster_home}", flush=True)
        print(f"web UI: http://{host}:{port} (Ctrl-C stops it and the mirror)", flush=True)
        dagster = Path(sys.executable).with_name("dagster")
        server = subprocess.Popen([str(dagster), "dev", "-m", "encord_assets.definitions", "-h", host, "-p", str(port)], env=env)
        try:
            return server.wait()
        except KeyboardInterrupt:
            server.send_signal(signal.SIGINT)  # dagster dev shuts its webserver, daemon and code server down
            return server.wait()
