"""A Hugging Face Hub emulation on the mirror, for any repository a builder writes.

Builders put a repository's files under `repo_dir(content_dir, repo_id)`; the routes below
serve them the way huggingface.co does for the real client: repo info and
revision endpoints, tree listing paginated by a `Link: rel="next"` header, `paths-info`
(form POST), and `resolve` with `X-Repo-Commit`, `ETag`/`X-Linked-Etag` and `X-Linked-Size`.
Large (LFS-like) files answer `resolve` with a 302 to the mirror's second origin, where the
bytes are served with Range/206, as the real CDN does. Errors carry `X-Error-Code`.

The commit sha is derived from the repository's content, so rebuilding the same content
keeps the revision and changing any file moves it. Faults injected by the server apply here too.
"""

import hashlib
import json
import os
import threading
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from encord_assets.mirror.server import Mirror, MirrorHandler, Reply

PREFIX = "hf"
DEFAULT_BRANCH = "main"
LFS_SUFFIXES = (".zip", ".parquet", ".tar.gz", ".tar", ".npy", ".mp4")
LFS_MIN_SIZE = 10 << 20
PAGE_SIZE = 1000  # the Hub's page size for tree listings (50 with expand=true)
EXPANDED_PAGE_SIZE = 50
REPO_TYPES = {"datasets": "dataset", "models": "model"}
FIXED_DATE = "2017-01-01T00:00:00.000Z"

_hashes: dict[str, tuple[int, int, str, str]] = {}  # path -> (size, mtime_ns, sha256, git blob sha1)
_hash_lock = threading.Lock()


def repo_dir(content_dir: Path, repo_id: str, repo_type: str = "dataset") -> Path:
    """Where a builder writes the files of `repo_id` (e.g. content_dir/hf/datasets/ORG/NAME)."""
    return Path(content_dir) / PREFIX / f"{repo_type}s" / repo_id


def env(mirror: Mirror) -> dict[str, str]:
    return {"HF_ENDPOINT": mirror.url}


def _file_hashes(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file, cached while its size and mtime stay the same."""
    stat = path.stat()
    key = str(path)
    with _hash_lock:
        cached = _hashes.get(key)
        if cached and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            return cached[2], cached[3]
        sha256, blob = hashlib.sha256(), hashlib.sha1(f"blob {stat.st_size}\0".encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                sha256.update(chunk)
                blob.update(chunk)
        _hashes[key] = (stat.st_size, stat.st_mtime_ns, sha256.hexdigest(), blob.hexdigest())
        return _hashes[key][2], _hashes[key][3]


def is_lfs(path: str, size: int) -> bool:
    return path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


class Repo:
    """One repository on disk at its single (current) commit."""

    def __init__(self, root: Path, repo_id: str):
        self.root = root
        self.repo_id = repo_id
        self.files = sorted(
            Path(folder, name).relative_to(root).as_posix()
            for folder, _, names in os.walk(root)
            for name in names
            if not name.endswith(".building")
        )
        lines = "".join(f"{path}\0{_file_hashes(root / path)[0]}\n" for path in self.files)
        self.sha = hashlib.sha1(f"{repo_id}\n{lines}".encode()).hexdigest()
        self.dirs = sorted({"/".join(p.split("/")[:i]) for p in self.files for i in range(1, p.count("/") + 1)})

    def has_revision(self, revision: str) -> bool:
        return revision in (DEFAULT_BRANCH, self.sha)

    def entry(self, path: str, expand: bool) -> dict:
        if path in self.dirs:
            entry = {"type": "directory", "oid": hashlib.sha1(f"{self.sha}:{path}".encode()).hexdigest(), "path": path}
        else:
            size = (self.root / path).stat().st_size
            sha256, blob = _file_hashes(self.root / path)
            entry = {"type": "file", "oid": blob, "size": size, "path": path}
            if is_lfs(path, size):
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
                entry |= {
                    "oid": hashlib.sha1(f"blob {len(pointer)}\0{pointer}".encode()).hexdigest(),
                    "lfs": {"oid": sha256, "size": size, "pointerSize": len(pointer)},
                }
        if expand:
            entry["lastCommit"] = {"id": self.sha, "title": "mirror build", "date": FIXED_DATE}
        return entry

    def children(self, folder: str, recursive: bool) -> list[str] | None:
        """Paths below `folder` ("" = root), directories first as the Hub lists them; None if no such folder."""
        if folder and folder not in self.dirs:
            return None
        prefix = folder + "/" if folder else ""
        below = [p for p in (*self.dirs, *self.files) if p.startswith(prefix)]
        return below if recursive else [p for p in below if "/" not in p[len(prefix) :]]


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(
        status,
        json.dumps({"error": message}).encode(),
        {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"},
    )


def _json(payload, headers: dict[str, str] | None = None) -> Reply:
    return Reply(200, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


def _repo(handler: MirrorHandler, kind: str, org: str, name: str) -> Repo | None:
    repo_type = REPO_TYPES.get(kind)
    root = repo_dir(handler.state.content_dir, f"{org}/{name}", repo_type or "unknown")
    return Repo(root, f"{org}/{name}") if repo_type and root.is_dir() else None


def _repo_not_found(repo_id: str) -> Reply:
    return _error(404, "RepoNotFound", f"Repository Not Found for url: {repo_id}.")


def _revision_not_found(repo: Repo, revision: str) -> Reply:
    return _error(404, "RevisionNotFound", f"Invalid rev id: {revision} in {repo.repo_id}")


def api_route(handler: MirrorHandler, path: str) -> Reply | None:
    """/api/{datasets,models}/ORG/NAME[/revision/REV | /tree/REV[/DIR] | /paths-info/REV]"""
    parts = path.split("/")  # "", "api", kind, org, name, ...
    if len(parts) < 5:
        return None
    repo = _repo(handler, parts[2], parts[3], parts[4])
    if repo is None:
        return _repo_not_found(f"{parts[3]}/{parts[4]}")
    action, rest = (parts[5], parts[6:]) if len(parts) > 5 else ("", [])
    revision = unquote(rest[0]) if rest else DEFAULT_BRANCH
    if action not in ("", "revision", "tree", "paths-info"):
        return _error(404, "EntryNotFound", f"unknown endpoint {path}")
    if not repo.has_revision(revision):
        return _revision_not_found(repo, revision)
    if action in ("", "revision"):
        return _json(
            {
                "_id": repo.sha[:24],
                "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": repo.sha,
                "private": False,
                "gated": False,
                "disabled": False,
                "lastModified": FIXED_DATE,
                "tags": [],
                "siblings": [{"rfilename": p} for p in repo.files],
            }
        )
    query = parse_qs(urlsplit(handler.path).query)
    if action == "paths-info":
        length = int(handler.headers.get("Content-Length") or 0)
        form = parse_qs(handler.rfile.read(length).decode())
        expand = form.get("expand", ["False"])[0].lower() == "true"
        wanted = [p.strip("/") for p in form.get("paths", [])]
        return _json([repo.entry(p, expand) for p in wanted if p in repo.files or p in repo.dirs])
    folder = unquote("/".join(rest[1:])).strip("/")
    expand = query.get("expand", ["false"])[0].lower() == "true"
    recursive = query.get("recursive", ["false"])[0].lower() == "true"
    listing = repo.children(folder, recursive)
    if listing is None:
        return _error(404, "EntryNotFound", f"{folder} does not exist on {revision}")
    page = EXPANDED_PAGE_SIZE if expand else PAGE_SIZE
    start = int(query.get("cursor", ["0"])[0])
    headers = {}
    if start + page < len(listing):
        params = {"recursive": str(recursive), "expand": str(expand), "cursor": str(start + page)}
        headers["Link"] = f'<http://{handler.headers["Host"]}{urlsplit(handler.path).path}?{urlencode(params)}>; rel="next"'
    return _json([repo.entry(p, expand) for p in listing[start : start + page]], headers)


def resolve_route(mirror: Mirror):
    def route(handler: MirrorHandler, path: str) -> Reply | None:
        """/{datasets}/ORG/NAME/resolve/REV/PATH"""
        parts = path.split("/")  # "", kind, org, name, "resolve", rev, path...
        if len(parts) < 7 or parts[4] != "resolve":
            return None
        repo = _repo(handler, parts[1], parts[2], parts[3])
        if repo is None:
            return _repo_not_found(f"{parts[2]}/{parts[3]}")
        revision, file = unquote(parts[5]), unquote("/".join(parts[6:]))
        if not repo.has_revision(revision):
            return _revision_not_found(repo, revision)
        if file not in repo.files:
            return _error(404, "EntryNotFound", f"{file} does not exist on {revision}")
        entry = repo.entry(file, expand=False)
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{entry["oid"]}"'}
        if "lfs" not in entry:
            return Reply(200, repo.root / file, headers)
        cdn = f"{mirror.cdn_url}/{PREFIX}/{parts[1]}/{repo.repo_id}/{quote(file)}"
        headers |= {"X-Linked-Etag": f'"{entry["lfs"]["oid"]}"', "X-Linked-Size": str(entry["size"]), "Location": cdn}
        return Reply(302, b"", headers)

    return route


def routes(mirror: Mirror) -> None:
    """Install the Hub routes once per mirror (several upstream modules may ask for them)."""
    if any(prefix == "/api/" for prefix, _ in mirror.state.routes):
        return
    mirror.add_route("/api/", api_route)
    resolve = resolve_route(mirror)
    for kind in REPO_TYPES:
        mirror.add_route(f"/{kind}/", resolve)


def repo_sha(content_dir: Path, repo_id: str, repo_type: str = "dataset") -> str:
    """The commit the mirror serves for a repository (what `main` resolves to)."""
    return Repo(repo_dir(content_dir, repo_id, repo_type), repo_id).sha
