"""A local S3-compatible server on 127.0.0.1 (moto's S3, in memory) for trying an s3:// ROOT, and
for the tests and benchmarks: it counts requests by method, writes a request log, and can inject
faults (503 SlowDown, connection resets, truncated responses) into uploads.

Run it with `encord-assets objectstore --dir DIR [--port N]`; `ObjectStore` starts and stops it
as a child process (by process group) from Python.
"""

import argparse
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

CONTROL = "/_encord_objectstore"
# any values work with moto; they are not secrets, but the tests check they never leak all the same
ACCESS_KEY_ID = "encord-local-key"
SECRET_ACCESS_KEY = "encord-local-secret"
REGION = "us-east-1"
UPLOADS = ("PUT", "POST")  # PutObject, UploadPart, Create/CompleteMultipartUpload
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class Recorder:
    """WSGI middleware around moto: request counts and log, and fault injection on uploads."""

    def __init__(self, app, log_path: Path):
        self.app = app
        self.log = open(log_path, "a", buffering=1)
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.faults = {"rate": 0.0, "kinds": ["503"], "delay": 0.0, "seed": 0}
        self.injected = 0
        self.random = random.Random(0)

    def _control(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            with self.lock:
                self.faults.update(json.loads(body or b"{}"))
                self.random = random.Random(self.faults["seed"])
        with self.lock:
            data = json.dumps({"requests": self.counts, "faults_injected": self.injected, "faults": self.faults}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(CONTROL):
            return self._control(environ, start_response)
        method = environ["REQUEST_METHOD"]
        with self.lock:
            self.counts[method] = self.counts.get(method, 0) + 1
            fault = None
            if method in UPLOADS and self.random.random() < self.faults["rate"]:
                fault = self.random.choice(self.faults["kinds"])
                self.injected += 1
            delay = self.faults["delay"] if method in UPLOADS else 0.0
        self.log.write(f"{time.time():.3f} {method} {environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')} {fault or ''}\n")
        if delay:
            time.sleep(delay)
        if fault == "503":
            start_response("503 Slow Down", [("Content-Type", "application/xml"), ("Content-Length", str(len(SLOW_DOWN)))])
            return [SLOW_DOWN]
        if fault == "reset":
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            connection = environ.get("werkzeug.socket")
            if connection is not None:  # RST instead of FIN: the client sees a reset
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                connection.close()
            start_response("500 Reset", [("Content-Length", "0")])
            return [b""]
        if fault == "truncate":
            # the upload is done, then its response is cut short: the client retries an upload that landed
            captured = {}

            def keep(status, headers, exc_info=None):
                captured.update(status=status, headers=headers)

            body = b"".join(self.app(environ, keep))
            headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
            start_response(captured["status"], [*headers, ("Content-Length", str(len(body) + 100))])
            return [body]
        return self.app(environ, start_response)


def serve(directory: Path, port: int) -> None:
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    directory.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MOTO_PORT", str(port))
    app = Recorder(DomainDispatcherApplication(create_backend_app), directory / "requests.log")
    run_simple("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ObjectStore:
    """The server as a child process in its own process group, on a free loopback port."""

    def __init__(self, directory: Path, port: int = 0, min_part_bytes: int | None = None):
        self.directory = Path(directory)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.min_part_bytes = min_part_bytes
        self.process: subprocess.Popen | None = None

    def start(self) -> "ObjectStore":
        env = dict(os.environ)
        if self.min_part_bytes is not None:  # moto refuses parts under 5 MiB, as S3 does, unless told otherwise
            env["S3_UPLOAD_PART_MIN_SIZE"] = str(self.min_part_bytes)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "encord_assets.store.objectstore", "--dir", str(self.directory), "--port", str(self.port)],
            env=env,
            stdout=open(self.directory / "server.log", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.stats()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the object store did not start; see {self.directory / 'server.log'}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> "ObjectStore":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """The standard AWS variables that point clients at this server."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": REGION,
        }

    def client(self):
        import boto3

        env = self.environment()
        return boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def _control(self, settings: dict | None = None) -> dict:
        data = json.dumps(settings).encode() if settings is not None else None
        with urllib.request.urlopen(urllib.request.Request(self.url + CONTROL, data=data), timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        return self._control()

    def set_faults(self, rate: float, kinds: tuple[str, ...] = ("503",), delay: float = 0.0, seed: int = 0) -> None:
        """Inject a fault into this share of uploads (PUT/POST): `503`, `reset`, `truncate`; `delay` slows each upload."""
        self._control({"rate": rate, "kinds": list(kinds), "delay": delay, "seed": seed})


def serve_here(directory: Path, port: int, bucket: str) -> int:
    """`encord-assets objectstore`: serve in this process (stopping it stops the server), create
    `bucket`, print the export lines for an s3:// ROOT, serve until interrupted."""
    server = ObjectStore(directory, port)
    thread = threading.Thread(target=serve, args=(server.directory, server.port), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            server.stats()
            break
        except OSError:
            if not thread.is_alive() or time.monotonic() > deadline:
                print(f"the object store did not start on port {server.port}", file=sys.stderr)
                return 1
            time.sleep(0.1)
    server.create_bucket(bucket)
    for name, value in {**server.environment(), "ENCORD_OBJECTSTORE_BUCKET": bucket}.items():
        print(f"export {name}={value}", flush=True)
    print(f"# then: uv run encord-assets demo --root s3://{bucket}/e-mm1   (requests logged in {directory / 'requests.log'})", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serve(args.dir, args.port)


if __name__ == "__main__":
    main()
