"""`encord-assets dev`: the web UI against the local mirror, so a newcomer can click *Materialize* offline.

Builds the mirror for the infos and the Open Images emulation (as the demo does), serves it,
prepares the instance (dagster.yaml, pool limits) and runs `dagster dev` with every upstream
setting pointed at the mirror, until interrupted.
"""

import signal
import subprocess
import sys
from pathlib import Path

from encord_assets.demo import offline_upstreams
from encord_assets.mirror import openimages


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
    with offline_upstreams(infos_dir, str(root), dagster_home, mirror_dir, openimages_dir, openimages_classes):
        print(f"web UI: http://{host}:{port} (Ctrl-C stops it and the mirror)", flush=True)
        dagster = Path(sys.executable).with_name("dagster")
        server = subprocess.Popen([str(dagster), "dev", "-m", "encord_assets.definitions", "-h", host, "-p", str(port)])
        try:
            return server.wait()
        except KeyboardInterrupt:
            server.send_signal(signal.SIGINT)  # dagster dev shuts its webserver, daemon and code server down
            return server.wait()
