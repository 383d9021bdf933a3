"""A Hugging Face hub of our own on loopback, serving one model repository from a folder.

Enough of the hub's HTTP API for ``huggingface_hub.snapshot_download`` and
``HfApi.list_repo_files`` (``HF_ENDPOINT`` points at it): the revision's info,
the recursive tree listing, and ``resolve`` (HEAD for metadata, GET for the
bytes). ``.safetensors`` files are served as LFS files (ETag = sha256), others
as git files (ETag = git blob sha1), as the real hub does; no Xet headers, so
the client downloads over plain HTTP. Every request's path and Authorization
header are recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.servers import BackgroundHTTPServer


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class FakeHub(BackgroundHTTPServer):
    """Serves ``folder`` as the model repository ``repo_id`` at one commit."""

    def __init__(self, repo_id: str, folder: Path) -> None:
        self.repo_id = repo_id
        self.commit = hashlib.sha1(repo_id.encode(), usedforsecurity=False).hexdigest()
        self.files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        #: (method, path, Authorization header) of every request.
        self.requests: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        super().__init__(self._handler())

    @property
    def endpoint(self) -> str:
        """The value for ``HF_ENDPOINT``."""
        return f"http://127.0.0.1:{self.port}"

    def downloaded(self) -> list[str]:
        """Return the repository files the client fetched (GET on resolve), in order."""
        marker = f"/{self.repo_id}/resolve/"
        with self._lock:
            return [
                path.split(marker, 1)[1].split("/", 1)[1]
                for method, path, _auth in self.requests
                if method == "GET" and marker in path
            ]

    def _entry(self, path: str, data: bytes) -> dict[str, object]:
        entry: dict[str, object] = {
            "type": "file",
            "oid": _git_sha1(data),
            "size": len(data),
            "path": path,
        }
        if path.endswith(".safetensors"):
            sha = hashlib.sha256(data).hexdigest()
            entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
        return entry

    def _etag(self, path: str, data: bytes) -> str:
        if path.endswith(".safetensors"):
            return hashlib.sha256(data).hexdigest()
        return _git_sha1(data)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, data: object) -> None:
                self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json"})

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                with hub._lock:
                    hub.requests.append(
                        (self.command, self.path, self.headers.get("Authorization"))
                    )
                path = unquote(urlsplit(self.path).path)
                api = f"/api/models/{hub.repo_id}/"
                resolve = f"/{hub.repo_id}/resolve/"
                if path.startswith(api + "revision/"):
                    siblings = [{"rfilename": name} for name in hub.files]
                    self._json({"id": hub.repo_id, "sha": hub.commit, "siblings": siblings})
                elif path.startswith(api + "tree/"):
                    self._json([hub._entry(name, data) for name, data in hub.files.items()])
                elif path.startswith(resolve):
                    name = path[len(resolve) :].split("/", 1)[1]
                    data = hub.files.get(name)
                    if data is None:
                        self._send(404, b"", {"X-Error-Code": "EntryNotFound"})
                        return
                    etag = f'"{hub._etag(name, data)}"'
                    headers = {"X-Repo-Commit": hub.commit, "ETag": etag}
                    if name.endswith(".safetensors"):
                        headers["X-Linked-Etag"] = etag
                        headers["X-Linked-Size"] = str(len(data))
                    self._send(200, data, headers)
                else:
                    self._send(404, b"", {"X-Error-Code": "RepoNotFound"})

        return Handler
