"""A file server on loopback that speaks HTTP Range, for download tests.

It serves one file at ``/files/<name>`` with an ETag, answers ``Range:
bytes=N-`` with 206 (honouring ``If-Range``), and records every request: the
Range asked for, the Authorization header, the status and the body bytes it
really sent. Knobs make it misbehave the ways real servers do: drop the
connection after N body bytes (once), ignore Range (always 200), serve other
bytes than the expected ones, answer 404, or redirect to another server.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.servers import BackgroundHTTPServer


def fake_checkpoint(size: int, seed: int = 7) -> bytes:
    """Return ``size`` deterministic bytes laid out as a safetensors file (header, then data)."""
    body = random.Random(seed).randbytes(max(size - 128, 1))
    header = json.dumps(
        {"weight": {"dtype": "U8", "shape": [len(body)], "data_offsets": [0, len(body)]}}
    ).encode()
    header += b" " * (120 - len(header))  # a fixed 120-byte header: size stays exact
    return len(header).to_bytes(8, "little") + header + body


@dataclass
class Served:
    """One request the server answered."""

    path: str
    range: str | None
    if_range: str | None
    authorization: str | None
    status: int
    sent: int


class RangeFileServer(BackgroundHTTPServer):
    """A threaded HTTP file server on 127.0.0.1 with Range support and failure knobs."""

    def __init__(self, data: bytes, name: str = "checkpoint.safetensors") -> None:
        self.data = data
        self.name = name
        self.etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        #: Close the connection after this many body bytes, on the next request only.
        self.drop_after: int | None = None
        #: Answer every request with the whole file (200), as servers without Range do.
        self.ignore_range = False
        #: Answer 404 to everything.
        self.missing = False
        #: Answer with a 302 to this URL instead of the file.
        self.redirect_to: str | None = None
        self.requests: list[Served] = []
        self._lock = threading.Lock()
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        """The file's URL."""
        return f"http://127.0.0.1:{self.port}/files/{self.name}"

    def _record(self, served: Served) -> None:
        with self._lock:
            self.requests.append(served)

    def _take_drop(self) -> int | None:
        with self._lock:
            drop, self.drop_after = self.drop_after, None
            return drop

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

            def do_GET(self) -> None:
                wanted = self.headers.get("Range")
                record = Served(
                    path=self.path,
                    range=wanted,
                    if_range=self.headers.get("If-Range"),
                    authorization=self.headers.get("Authorization"),
                    status=200,
                    sent=0,
                )
                try:
                    self._answer(record)
                finally:
                    server._record(record)

            def _answer(self, record: Served) -> None:
                if server.redirect_to:
                    record.status = 302
                    self.send_response(302)
                    self.send_header("Location", server.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if server.missing or self.path != f"/files/{server.name}":
                    record.status = 404
                    body = b"not found"
                    self.send_response(404)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data = server.data
                start = 0
                honour = record.range is not None and not server.ignore_range
                if honour and record.if_range and record.if_range != server.etag:
                    honour = False  # the file changed since the part began: send it whole
                if honour and record.range and record.range.startswith("bytes="):
                    first = record.range[len("bytes=") :].split("-", 1)[0]
                    start = int(first) if first.isdigit() else 0
                    if start >= len(data):
                        record.status = 416
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                body = data[start:]
                record.status = 206 if start else 200
                self.send_response(record.status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", server.etag)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                drop = server._take_drop()
                if drop is not None:
                    body = body[:drop]
                    self.close_connection = True  # a short body, then the connection closes
                for offset in range(0, len(body), 64 * 1024):
                    chunk = body[offset : offset + 64 * 1024]
                    self.wfile.write(chunk)
                    record.sent += len(chunk)
                self.wfile.flush()

        return Handler
