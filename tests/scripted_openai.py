"""A scripted OpenAI-compatible HTTP server for tests: real sockets, canned answers.

``ScriptedOpenAI`` listens on 127.0.0.1 (a free port) in a background thread and
serves ``GET /v1/models`` and ``POST /v1/chat/completions``. A script decides
each chat answer: a list of ``Reply`` (used in order, the last one repeating) or
a function of the recorded request. Every request is recorded (method, path,
headers, JSON body, arrival and finish times) so tests can assert on what the
backend sent; headers stay out of ``repr`` so a key never lands in test output.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.servers import BackgroundHTTPServer


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, body (dict as JSON, str as text) and a delay first."""

    status: int = 200
    body: dict[str, Any] | list[Any] | str = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str] = field(repr=False)
    body: Any
    arrived: float
    finished: float | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of a chat request (empty for others)."""
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def system(self) -> str:
        """The first system message's content of a chat request."""
        return next((m["content"] for m in self.messages if m.get("role") == "system"), "")


def completion(
    content: str | None,
    *,
    finish_reason: str = "stop",
    usage: dict[str, int] | None = None,
    delay_s: float = 0.0,
) -> Reply:
    """Return a 200 chat completion whose message says ``content``."""
    body: dict[str, Any] = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "scripted",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return Reply(200, body, delay_s)


def error_reply(status: int, message: str, delay_s: float = 0.0) -> Reply:
    """Return an OpenAI-style error answer."""
    return Reply(status, {"error": {"message": message, "type": "error", "code": status}}, delay_s)


Script = Sequence[Reply] | Callable[[Recorded], Reply]


class ScriptedOpenAI(BackgroundHTTPServer):
    """The server; use as a context manager (started on enter, stopped on exit)."""

    def __init__(
        self,
        script: Script = (),
        *,
        models: Sequence[str] = ("test-model",),
        models_reply: Reply | None = None,
    ) -> None:
        """Serve ``script`` for chat requests and ``models`` (or ``models_reply``) for /models."""
        self.script = script
        self.models = list(models)
        self.models_reply = models_reply
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._next = 0
        super().__init__(self._handler_class())

    @property
    def url(self) -> str:
        """The base URL a backend is given: ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[Recorded]:
        """The chat completion requests received, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _reply_for(self, request: Recorded) -> Reply:
        if request.method == "GET" and request.path.rstrip("/").endswith("/models"):
            if self.models_reply is not None:
                return self.models_reply
            data = [{"id": m, "object": "model", "owned_by": "scripted"} for m in self.models]
            return Reply(200, {"object": "list", "data": data})
        if request.method == "POST" and request.path.endswith("/chat/completions"):
            if callable(self.script):
                return self.script(request)
            with self._lock:
                if not self.script:
                    return error_reply(500, "the test gave this server no script")
                reply = self.script[min(self._next, len(self.script) - 1)]
                self._next += 1
                return reply
        return error_reply(404, f"no route for {request.method} {request.path}")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like real servers

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet: pytest shows stderr of failing tests."""

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                record = Recorded(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    arrived=time.monotonic(),
                )
                with server._lock:
                    server.requests.append(record)
                reply = server._reply_for(record)
                if reply.delay_s:
                    server.stopping.wait(reply.delay_s)
                payload = (
                    reply.body.encode() if isinstance(reply.body, str) else json.dumps(reply.body)
                )
                data = payload if isinstance(payload, bytes) else payload.encode()
                kind = "text/plain" if isinstance(reply.body, str) else "application/json"
                record.finished = time.monotonic()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            do_GET = _handle  # noqa: N815 - the names http.server dispatches to
            do_POST = _handle  # noqa: N815

        return Handler


def closed_port_url() -> str:
    """Return a loopback base URL on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"http://127.0.0.1:{port}/v1"
