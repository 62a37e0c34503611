"""A throwaway PostgreSQL and Redis on 127.0.0.1 for the team instance's tests and benchmarks.

Each server is started as a child process in its own session, on a free port, with its data in
a fresh temporary folder, and stopped by its pid (then its process group): nothing outlives it.
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# PostgreSQL refuses to run as root: as root, run it as the account Debian's package creates.
POSTGRES_ACCOUNT = "postgres"


class Unavailable(RuntimeError):
    """A server's binaries are not installed here (the message says which and how to get them)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin_dir() -> Path:
    """Where initdb and postgres are: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    raise Unavailable("PostgreSQL is not installed (initdb not found): apt-get install -y postgresql")


def redis_server_bin() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise Unavailable("Redis is not installed (redis-server not found): apt-get install -y redis-server")
    return found


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(POSTGRES_ACCOUNT)
    except KeyError as error:
        raise Unavailable(f"running as root and there is no '{POSTGRES_ACCOUNT}' account for PostgreSQL") from error


def _as_user(account: pwd.struct_passwd | None):
    def prepare() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        if account is not None:
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)

    return prepare


def _stop(process: subprocess.Popen, sig: int, grace: float) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, patience: float = 60) -> None:
    deadline = time.monotonic() + patience
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {port} did not come up:\n{log.read_text()[-2000:]}") from None
            time.sleep(0.2)


@contextmanager
def local_postgres() -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1; yields its `postgresql+psycopg2://` URL.

    psycopg2 in the URL: with SQLAlchemy 2.1 a bare `postgresql://` picks psycopg 3.
    """
    bin_dir = postgres_bin_dir()
    account = _run_as()
    # Under /tmp, not the caller's temporary folder: the postgres account must be able to reach it.
    base = Path(tempfile.mkdtemp(prefix="encord_pg_"))
    data, log = base / "data", base / "postgres.log"
    if account is not None:
        os.chown(base, account.pw_uid, account.pw_gid)
    try:
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, preexec_fn=_as_user(account),
        )  # fmt: skip
        port = free_port()
        command = [
            str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(base),
            "-c", "fsync=off", "-c", "max_connections=200",
        ]  # fmt: skip
        with open(log, "wb") as out:
            server = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_as_user(account)
            )
        try:
            _wait_for_port(port, server, log)
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
        finally:
            _stop(server, signal.SIGINT, 30)  # SIGINT: PostgreSQL's fast shutdown
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def local_redis() -> Iterator[str]:
    """A Redis without persistence on 127.0.0.1; yields its `redis://` URL."""
    binary = redis_server_bin()
    base = Path(tempfile.mkdtemp(prefix="encord_redis_"))
    port, log = free_port(), base / "redis.log"
    try:
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(base)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_as_user(None),
            )  # fmt: skip
        try:
            _wait_for_port(port, server, log)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop(server, signal.SIGTERM, 10)
    finally:
        shutil.rmtree(base, ignore_errors=True)
