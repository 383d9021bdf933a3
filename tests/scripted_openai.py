"""A scripted OpenAI-compatible HTTP server for tests: real sockets, canned answers.

``ScriptedOpenAI`` listens on 127.0.0.1 (a free port) in a background thread and
serves ``GET /v1/models`` and ``POST /v1/chat/completions``. A script decides
each chat answer: a list of ``Reply`` (used in order, the last one repeating) or
a function of the recorded request. Every request is recorded (method, path,
headers, JSON body, arrival and finish times) so tests can assert on what the
backend sent; headers stay out of ``repr`` so a key never lands in test output.

Like real servers it streams a 200 answer as server-sent events when the request
asks ``stream: true`` (chunked, one event per word, usage last when
``stream_options.include_usage`` asks and the reply has usage), unless built with
``streaming=False`` (a server that answers a plain body). A streamed reply can
pause between tokens, stall after some tokens, or go on without end; either way
the server notices a client that leaves (like mlx_lm.server, vLLM and llama.cpp,
it stops generating) and records how each generation ended.

``schemas`` says what it does with ``response_format``, and the structured-output
probe (its schema is ``server_structured.PROBE_SCHEMA``) is answered accordingly
by the server itself, without using the script (``schemas=None``: the script
answers everything): ``json_schema`` honours that
dialect (vLLM, LM Studio), ``ignore`` accepts any and answers prose
(mlx_lm.server), ``json_object_schema`` enforces llama.cpp's form and answers 422
to the other (llama-cpp-python), ``refuse`` answers 500 "No Metal back-end" to
any (vllm-mlx, mlx_vlm.server on a CPU).
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from backends.server_structured import PROBE_SCHEMA
from tests.servers import BackgroundHTTPServer

Schemas = Literal["json_schema", "ignore", "json_object_schema", "refuse"]
#: How a streamed generation ended.
Ending = Literal["finished", "client closed", "server stopped"]

PROBE_HONOURED = '{"answer": "yes"}'
PROBE_IGNORED = "Yes, the sky is blue on a clear day."


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, body (dict as JSON, str as text) and a delay first.

    When streamed: ``token_delay_s`` between tokens, ``stall_after`` tokens and then
    silence until the client leaves, or ``endless`` tokens after the content until
    the client leaves.
    """

    status: int = 200
    body: dict[str, Any] | list[Any] | str = field(default_factory=dict)
    delay_s: float = 0.0
    token_delay_s: float = 0.0
    stall_after: int | None = None
    endless: bool = False


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str] = field(repr=False)
    body: Any
    arrived: float
    finished: float | None = None
    streamed: bool = False
    ending: Ending | None = None
    scripted: bool = False

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of a chat request (empty for others)."""
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def system(self) -> str:
        """The first system message's content of a chat request."""
        return next((m["content"] for m in self.messages if m.get("role") == "system"), "")

    @property
    def response_format(self) -> dict[str, Any] | None:
        """The request's ``response_format``, if any."""
        found = self.body.get("response_format") if isinstance(self.body, dict) else None
        return found if isinstance(found, dict) else None

    @property
    def is_probe(self) -> bool:
        """Whether this is the structured-output probe (it asks the probe's schema)."""
        return _schema_of(self.response_format) == PROBE_SCHEMA


def _schema_of(format_field: dict[str, Any] | None) -> Any:
    if not format_field:
        return None
    if format_field.get("type") == "json_schema":
        inner = format_field.get("json_schema")
        return inner.get("schema") if isinstance(inner, dict) else None
    return format_field.get("schema")


def completion(
    content: str | None,
    *,
    finish_reason: str = "stop",
    usage: dict[str, int] | None = None,
    delay_s: float = 0.0,
    token_delay_s: float = 0.0,
    stall_after: int | None = None,
    endless: bool = False,
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
    return Reply(200, body, delay_s, token_delay_s, stall_after, endless)


def error_reply(status: int, message: str, delay_s: float = 0.0) -> Reply:
    """Return an OpenAI-style error answer."""
    return Reply(status, {"error": {"message": message, "type": "error", "code": status}}, delay_s)


def context_overflow(limit: int = 2048, requested: int = 2907) -> Reply:
    """Return the 400 an OpenAI-style server gives a conversation longer than its context."""
    return error_reply(
        400,
        f"This model's maximum context length is {limit} tokens. However, you requested "
        f"{requested} tokens ({requested - 800} in the messages, 800 in the completion). "
        "Please reduce the length of the messages or completion.",
    )


Script = Sequence[Reply] | Callable[[Recorded], Reply]


def _pieces(text: str) -> list[str]:
    """Split ``text`` the way a server streams it: a word (with its spaces) per event."""
    return re.findall(r"\s*\S+\s*|\s+", text) if text else []


class ScriptedOpenAI(BackgroundHTTPServer):
    """The server; use as a context manager (started on enter, stopped on exit)."""

    def __init__(
        self,
        script: Script = (),
        *,
        models: Sequence[str] = ("test-model",),
        models_reply: Reply | None = None,
        schemas: Schemas | None = "json_schema",
        streaming: bool = True,
        stream_usage: bool = True,
    ) -> None:
        """Serve ``script`` for chat requests and ``models`` (or ``models_reply``) for /models.

        ``schemas``: what the server does with ``response_format`` (module docstring);
        None leaves every request to the script, probes included;
        ``streaming=False``: answer plain JSON even to ``stream: true``;
        ``stream_usage=False``: ignore ``stream_options`` (no usage event).
        """
        self.script = script
        self.models = list(models)
        self.models_reply = models_reply
        self.schemas = schemas
        self.streaming = streaming
        self.stream_usage = stream_usage
        self.requests: list[Recorded] = []
        self.client_closed = threading.Event()
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._next = 0
        super().__init__(self._handler_class())

    @property
    def url(self) -> str:
        """The base URL a backend is given: ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[Recorded]:
        """The chat completion requests the script answered, in arrival order.

        Probes and refused formats that the server answered itself are not among them.
        """
        with self._lock:
            return [r for r in self.requests if r.scripted]

    @property
    def probes(self) -> list[Recorded]:
        """The structured-output probe requests received, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions") and r.is_probe]

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until no streamed generation is running; return whether that happened."""
        with self._idle:
            return self._idle.wait_for(lambda: self.running == 0, timeout_s)

    def _format_reply(self, request: Recorded) -> Reply | None:
        """The server's own answer to ``response_format`` (probe or refusal), else None."""
        format_field = request.response_format
        if format_field is None or self.schemas is None:
            return None
        kind = format_field.get("type")
        if self.schemas == "refuse":
            return error_reply(500, "No Metal back-end is available for this request")
        if self.schemas == "json_object_schema" and kind != "json_object":
            detail = [
                {
                    "loc": ["body", "response_format", "type"],
                    "msg": "Input should be 'text' or 'json_object'",
                }
            ]
            return Reply(422, {"detail": detail})
        if not request.is_probe:
            return None
        honoured = (self.schemas == "json_schema" and kind == "json_schema") or (
            self.schemas == "json_object_schema" and kind == "json_object"
        )
        return completion(PROBE_HONOURED if honoured else PROBE_IGNORED)

    def _reply_for(self, request: Recorded) -> Reply:
        if request.method == "GET" and request.path.rstrip("/").endswith("/models"):
            if self.models_reply is not None:
                return self.models_reply
            data = [{"id": m, "object": "model", "owned_by": "scripted"} for m in self.models]
            return Reply(200, {"object": "list", "data": data})
        if request.method == "POST" and request.path.endswith("/chat/completions"):
            own = self._format_reply(request)
            if own is not None:
                return own
            request.scripted = True
            if callable(self.script):
                return self.script(request)
            with self._lock:
                if not self.script:
                    return error_reply(500, "the test gave this server no script")
                reply = self.script[min(self._next, len(self.script) - 1)]
                self._next += 1
                return reply
        return error_reply(404, f"no route for {request.method} {request.path}")

    def _generation(self, delta: int, ending: Ending | None = None) -> None:
        with self._idle:
            self.running += delta
            self.max_running = max(self.max_running, self.running)
            if ending == "client closed":
                self.client_closed.set()
            self._idle.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like real servers

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet: pytest shows stderr of failing tests."""

            def handle(self) -> None:
                """Serve the connection; a client that hangs up is not an error here."""
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    super().handle()

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
                record.finished = time.monotonic()
                wants_stream = isinstance(body, dict) and body.get("stream") is True
                if (
                    server.streaming
                    and wants_stream
                    and reply.status == 200
                    and isinstance(reply.body, dict)
                    and self._streamable(reply.body)
                ):
                    record.streamed = True
                    server._generation(+1)
                    ending: Ending = "client closed"
                    try:
                        ending = self._stream(reply, body)
                    except (BrokenPipeError, ConnectionResetError):
                        ending = "client closed"
                    finally:
                        record.ending = ending
                        server._generation(-1, ending)
                    if ending != "finished":
                        self.close_connection = True
                    return
                self._plain(reply)

            def _plain(self, reply: Reply) -> None:
                payload = (
                    reply.body.encode() if isinstance(reply.body, str) else json.dumps(reply.body)
                )
                data = payload if isinstance(payload, bytes) else payload.encode()
                kind = "text/plain" if isinstance(reply.body, str) else "application/json"
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            # -- streaming ----------------------------------------------------------------

            def _client_gone(self, wait_s: float = 0.0) -> bool:
                """Wait up to ``wait_s`` for the client to leave; return whether it has."""
                readable, _, _ = select.select([self.connection], [], [], wait_s)
                if not readable:
                    return False
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def _pause(self, seconds: float | None) -> Ending | None:
                """Wait ``seconds`` (forever for None) unless the client or server leaves."""
                deadline = None if seconds is None else time.monotonic() + seconds
                while True:
                    if server.stopping.is_set():
                        return "server stopped"
                    left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                    if left <= 0:
                        return None
                    if self._client_gone(left):
                        return "client closed"

            def _event(self, data: dict[str, Any] | str) -> None:
                text = data if isinstance(data, str) else json.dumps(data)
                chunk = f"data: {text}\n\n".encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()

            def _delta(self, content: str | None, finish: str | None = None) -> dict[str, Any]:
                delta = {} if content is None else {"content": content}
                return {
                    "id": "chatcmpl-scripted",
                    "object": "chat.completion.chunk",
                    "model": "scripted",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }

            @staticmethod
            def _streamable(body: dict[str, Any]) -> bool:
                """Whether a 200 body can be sent as events: an error or a choice to stream.

                A malformed body (no choices: what a lying server sends) goes out as it is.
                """
                if body.get("error"):
                    return True
                choices = body.get("choices")
                return (
                    isinstance(choices, list)
                    and bool(choices)
                    and isinstance(choices[0], dict)
                    and isinstance(choices[0].get("message"), dict)
                )

            def _stream(self, reply: Reply, request: dict[str, Any]) -> Ending:
                assert isinstance(reply.body, dict)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if reply.body.get("error"):
                    self._event({"error": reply.body["error"]})
                    self._event("[DONE]")
                    self.wfile.write(b"0\r\n\r\n")
                    return "finished"
                choice = reply.body["choices"][0]
                content = choice.get("message", {}).get("content") or ""
                first = self._delta(None)
                first["choices"][0]["delta"] = {"role": "assistant"}
                self._event(first)
                for count, piece in enumerate(_pieces(content), start=1):
                    if self._client_gone():
                        return "client closed"
                    self._event(self._delta(piece))
                    if reply.stall_after is not None and count >= reply.stall_after:
                        return self._pause(None) or "client closed"
                    if reply.token_delay_s:
                        stopped = self._pause(reply.token_delay_s)
                        if stopped:
                            return stopped
                while reply.endless:
                    if self._client_gone():
                        return "client closed"
                    self._event(self._delta(" x"))
                    stopped = self._pause(reply.token_delay_s or 0.01)
                    if stopped:
                        return stopped
                self._event(self._delta(None, choice.get("finish_reason") or "stop"))
                options = request.get("stream_options")
                wants_usage = isinstance(options, dict) and options.get("include_usage")
                if wants_usage and server.stream_usage and "usage" in reply.body:
                    self._event({"choices": [], "usage": reply.body["usage"]})
                self._event("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return "finished"

            do_GET = _handle  # noqa: N815 - the names http.server dispatches to
            do_POST = _handle  # noqa: N815

        return Handler


def closed_port_url() -> str:
    """Return a loopback base URL on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"http://127.0.0.1:{port}/v1"
