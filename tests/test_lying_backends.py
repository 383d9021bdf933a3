"""Slow and lying backends: every misbehaving server ends in a passing fault or a clear error.

The text (``OpenAITextBackend``), vision (``OpenAIVisionBackend``) and image
(``A1111ImageBackend``) backends are pointed at servers that misbehave in ways
real servers and proxies do: answering after the timeout, sending headers and
then trickling bytes forever, stalling or hanging up in the middle of a body,
speaking something that is not HTTP, answering HTTP 200 with an error body, and
sending pictures that are not usable PNGs. Each call must end within a bound
derived from the configured timeout (with a generous margin), raising a
``PassingFault`` (retried by the task) or a one-line ``HyperlocalError``, never
hanging and never leaking another exception type.

The misbehaviours the scripted servers cannot act out (a body that never ends,
one cut short) come from ``LyingServer``, a raw-socket HTTP server in this file.
Each call runs in a thread with a deadline, so a hang fails the test instead of
hanging the suite; stopping the server closes its sockets and frees the thread.
"""

from __future__ import annotations

import base64
import contextlib
import io
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import pytest
from PIL import Image

from backends.a1111_image import A1111ImageBackend
from backends.base import CheckRequest, CopyRequest, ImageRequest
from backends.openai_text import OpenAITextBackend
from backends.openai_vision import OpenAIVisionBackend
from hyperlocal.errors import (
    BackendBusy,
    BackendTimeout,
    BackendUnavailable,
    HyperlocalError,
    InvalidImage,
    InvalidModelOutput,
    is_passing,
)
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS
from hyperlocal.models import Brief, ImagePrompt, PromptPhrase, PromptSyntax
from hyperlocal.prompts.clip_tokens import clip_counter
from hyperlocal.prompts.fitting import fit_image_prompt
from tests.pictures import painted
from tests.scripted_a1111 import ScriptedA1111
from tests.scripted_openai import Reply, ScriptedOpenAI, completion

Role = Literal["text", "vision", "image"]
Behaviour = Literal["trickle", "stall", "cut", "garbage"]

#: The timeout every backend here is configured with (seconds).
TIMEOUT_S = 0.5
#: How long a call may take at most: the timeout with a wide margin for slow CI machines.
DEADLINE_S = TIMEOUT_S + 3.0
ROLES: tuple[Role, ...] = ("text", "vision", "image")

BRIEF = Brief(business="Rosie's Bakery", event="Sourdough class", place="12 Market Street")
COPY_REQUEST = CopyRequest(brief=BRIEF, variant=1, variants=1)
LETTER_ZONE = place_design(FORMATS["letter"], "frosted").text_zone
SQUARE_ZONE = place_design(FORMATS["square"], "frosted").text_zone
PICTURE = painted()
CHECK_REQUEST = CheckRequest(
    image=PICTURE, text_zone=LETTER_ZONE, subject="abstract poster background", min_score=5
)
SIDE = 256


@pytest.fixture(autouse=True)
def forget_probes() -> Iterator[None]:
    """Start with no remembered response_format support (loopback ports get reused)."""
    OpenAITextBackend._format_support.clear()
    yield
    OpenAITextBackend._format_support.clear()


def image_request(side: int = SIDE) -> ImageRequest:
    """Return a small txt2img request in A1111 prompt syntax."""
    fitted = fit_image_prompt(
        ImagePrompt(phrases=[PromptPhrase(text="sourdough loaves", role="subject", priority=100)]),
        syntax=PromptSyntax(encoders=1, weights="a1111", chunks="a1111"),
        counters=[clip_counter()],
        zone=SQUARE_ZONE.describe(),
    )
    return ImageRequest(
        prompt=fitted,
        width=side,
        height=side,
        seed=1234,
        attempt=1,
        steps=20,
        cfg_scale=6.0,
        palette=["#1F3A5F", "#F2A541", "#FDF6EC"],
        text_zone=SQUARE_ZONE,
    )


def call_for(role: Role, url: str) -> Callable[[], object]:
    """Return one call of the ``role``'s backend at ``url`` (a server root), timeout ``TIMEOUT_S``.

    Text and vision servers are asked at ``url/v1``, as users configure them.
    """
    if role == "text":
        texts = OpenAITextBackend(f"{url}/v1", model="test-model", timeout_s=TIMEOUT_S)
        return lambda: texts.write_copy(COPY_REQUEST)
    if role == "vision":
        vision = OpenAIVisionBackend(f"{url}/v1", model="test-vlm", timeout_s=TIMEOUT_S)
        return lambda: vision.check(CHECK_REQUEST)
    painter = A1111ImageBackend(url, timeout_s=TIMEOUT_S)
    return lambda: painter.generate(image_request())


# -- a server that lies at the socket level ---------------------------------------------------


class LyingServer:
    """An HTTP server on 127.0.0.1 that reads each request, then misbehaves.

    ``trickle``: 200 headers, then one byte of chunked body every 0.1 s, forever.
    ``stall``: 200 headers announcing 4096 bytes, a few of them, then silence.
    ``cut``: 200 headers announcing 4096 bytes, a few of them, then the connection closes.
    ``garbage``: a line that is not HTTP at all, then the connection closes.
    Stopping (leaving the ``with``) closes every connection, which frees a stuck client.
    """

    def __init__(self, behaviour: Behaviour) -> None:
        """Listen on a free loopback port; serve ``behaviour`` once entered."""
        self.behaviour = behaviour
        self.paths: list[str] = []
        self._stop = threading.Event()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self._port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def url(self) -> str:
        """The server's root URL."""
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> LyingServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _read_request(self, connection: socket.socket) -> str | None:
        """Read one request (headers and body); return its path, or None if the client left."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                return None
            body += chunk
        return lines[0].split(" ")[1] if " " in lines[0] else lines[0]

    def _serve(self, connection: socket.socket) -> None:
        try:
            path = self._read_request(connection)
            if path is None:
                return
            with self._lock:
                self.paths.append(path)
            if self.behaviour == "garbage":
                connection.sendall(b"SSH-2.0-OpenSSH_9.6 not an HTTP server\r\n")
                connection.close()
                return
            if self.behaviour == "trickle":
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                while not self._stop.is_set():
                    connection.sendall(b"1\r\n \r\n")
                    self._stop.wait(0.1)
                return
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b'Content-Length: 4096\r\n\r\n{"choices": [{"message": '
            )
            if self.behaviour == "cut":
                connection.shutdown(socket.SHUT_RDWR)
                connection.close()
                return
            self._stop.wait()  # stall: keep the connection open, say nothing more
        except OSError:
            pass  # the client gave up or the server stopped


# -- calls with a deadline ----------------------------------------------------------------


@dataclass
class Outcome:
    """How one backend call ended: in time or not, how long it took, what it raised."""

    finished: bool
    seconds: float
    error: BaseException | None = None
    result: Any = None
    _thread: threading.Thread | None = field(default=None, repr=False)


def within_deadline(call: Callable[[], object], deadline_s: float = DEADLINE_S) -> Outcome:
    """Run ``call`` in a thread; return how it ended, or ``finished=False`` past the deadline.

    A call still running is left to its (daemon) thread; stopping its server frees it.
    """
    outcome = Outcome(finished=False, seconds=0.0)
    started = time.monotonic()

    def run() -> None:
        try:
            outcome.result = call()
        except BaseException as exc:  # recorded for the test to judge
            outcome.error = exc
        outcome.seconds = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    outcome._thread = thread
    thread.start()
    thread.join(deadline_s)
    outcome.finished = not thread.is_alive()
    if not outcome.finished:
        outcome.seconds = time.monotonic() - started
    return outcome


def assert_one_line(error: BaseException | None, kind: type[HyperlocalError]) -> str:
    """Assert ``error`` is a ``kind`` whose message is one non-empty line; return the message."""
    assert isinstance(error, kind), f"expected {kind.__name__}, got {error!r}"
    message = str(error)
    assert message.strip()
    assert len(message.splitlines()) == 1, message
    return message


# -- a server that answers after the timeout --------------------------------------------------


def test_a_slow_vision_server_is_a_timeout_naming_the_vision_setting() -> None:
    with ScriptedOpenAI([completion('{"score": 8}', delay_s=5)]) as server:
        vision = OpenAIVisionBackend(server.url, model="test-vlm", timeout_s=TIMEOUT_S)
        outcome = within_deadline(lambda: vision.check(CHECK_REQUEST))
    assert outcome.finished, "the vision check hung past its timeout"
    assert outcome.seconds < DEADLINE_S
    message = assert_one_line(outcome.error, BackendTimeout)
    assert "within 0.5 s" in message
    assert "HYPERLOCAL_VISION__TIMEOUT_S" in message
    assert is_passing(outcome.error)


# -- a server that streams forever ------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_a_server_that_trickles_bytes_forever_ends_within_the_timeout(role: Role) -> None:
    with LyingServer("trickle") as server:
        outcome = within_deadline(call_for(role, server.url))
        hung = not outcome.finished
    # Leaving the server closed its sockets: the stuck call (if any) ends now.
    if outcome._thread is not None:
        outcome._thread.join(timeout=5)
    assert server.paths, "the backend never reached the server"
    assert not hung, f"the {role} call was still reading after {DEADLINE_S} s"
    assert_one_line(outcome.error, BackendTimeout)


@pytest.mark.parametrize("role", ROLES)
def test_a_server_that_stalls_mid_body_is_a_timeout_within_the_configured_time(
    role: Role,
) -> None:
    with LyingServer("stall") as server:
        outcome = within_deadline(call_for(role, server.url))
        assert outcome.finished, f"the {role} call hung on a stalled body"
    assert outcome.seconds < DEADLINE_S
    message = assert_one_line(outcome.error, BackendTimeout)
    assert "within 0.5 s" in message
    assert server.paths


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("behaviour", ["cut", "garbage"])
def test_a_server_that_hangs_up_mid_body_or_is_not_http_is_unavailable(
    role: Role, behaviour: Behaviour
) -> None:
    with LyingServer(behaviour) as server:
        outcome = within_deadline(call_for(role, server.url))
        assert outcome.finished, f"the {role} call hung on a {behaviour} answer"
    assert outcome.seconds < DEADLINE_S
    message = assert_one_line(outcome.error, BackendUnavailable)
    assert server.url in message
    assert is_passing(outcome.error)


# -- HTTP 200 with an error body --------------------------------------------------------------

HTML_PAGE = "<html><body><h1>502 Bad Gateway</h1>\n<p>nginx</p></body></html>"


@pytest.mark.parametrize(
    ("reply", "fault", "words"),
    [
        (Reply(200, HTML_PAGE), InvalidModelOutput, "not JSON"),
        (Reply(200, {"detail": "Internal Server Error"}), InvalidModelOutput, "choices"),
        (Reply(200, {"choices": []}), InvalidModelOutput, "choices"),
        (Reply(200, ["not", "an", "object"]), InvalidModelOutput, "not a JSON object"),
        (Reply(200, {"error": {"message": "CUDA out of memory, try again"}}), BackendBusy, "CUDA"),
    ],
    ids=["html-page", "detail-only", "no-choices", "json-list", "transient-error"],
)
@pytest.mark.parametrize("role", ["text", "vision"])
def test_a_200_answer_with_an_error_body_is_a_clear_error_after_a_bounded_number_of_asks(
    role: Role, reply: Reply, fault: type[HyperlocalError], words: str
) -> None:
    with ScriptedOpenAI([reply]) as server:
        outcome = within_deadline(call_for(role, server.url.removesuffix("/v1")))
        assert outcome.finished
    message = assert_one_line(outcome.error, fault)
    assert words in message
    # Re-asked within the call at most three times, never in a loop.
    assert 1 <= len(server.chat_requests) <= 3


def test_a_vision_verdict_that_lies_about_its_score_is_invalid_after_three_asks() -> None:
    verdict = (
        '{"has_text": false, "shows_subject": true, "text_zone_calm": true, '
        '"has_defects": false, "score": 42, "reason": "great"}'
    )
    with ScriptedOpenAI([completion(verdict)]) as server:
        vision = OpenAIVisionBackend(server.url, model="test-vlm", timeout_s=TIMEOUT_S)
        outcome = within_deadline(lambda: vision.check(CHECK_REQUEST))
    assert outcome.finished
    message = assert_one_line(outcome.error, InvalidModelOutput)
    assert "score" in message
    assert len(server.chat_requests) == 3


class _A1111Answer(ScriptedA1111):
    """The scripted A1111 server, answering txt2img with a fixed 200 body."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self.body = body

    def _reply_for(self, request: Any) -> tuple[int, Any, float]:
        if request.path.endswith("/txt2img"):
            return 200, self.body, 0.0
        return super()._reply_for(request)


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), "#336699").save(buffer, format="PNG")
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _png_header_only(width: int, height: int) -> bytes:
    """Return a tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            {"error": "OutOfMemoryError", "detail": "CUDA out of memory", "images": []},
            "no images[0]",
        ),
        ({"images": [None], "info": "{}"}, "no images[0]"),
        ({"images": [""], "info": "{}"}, "not a picture"),
        ({"images": ["data:image/jpeg;base64," + _b64(_png(SIDE, SIDE))]}, "not a PNG data URI"),
        ({"images": [_b64(_png(SIDE, SIDE))[:200]]}, "not a picture"),
        ({"images": [_b64(_png(SIDE, SIDE)[:-40])]}, "not a picture"),
        ({"images": [_b64(_png(1, 1, "RGBA"))]}, "1x1"),
        ({"images": [_b64(_png(SIDE * 2, SIDE * 2))]}, "not the requested"),
        ({"images": [_b64(_png_header_only(9000, 9000))]}, "more than the 16.8 MP"),
    ],
    ids=[
        "error-body",
        "null-image",
        "empty-image",
        "jpeg-data-uri",
        "cut-base64",
        "truncated-png",
        "transparent-1x1",
        "upscaled",
        "huge-header",
    ],
)
def test_an_image_server_200_without_a_usable_png_is_invalid_image(body: Any, words: str) -> None:
    with _A1111Answer(body) as server:
        painter = A1111ImageBackend(server.url, timeout_s=TIMEOUT_S)
        outcome = within_deadline(lambda: painter.generate(image_request()))
    assert outcome.finished
    message = assert_one_line(outcome.error, InvalidImage)
    assert words in message
    assert not is_passing(outcome.error)


def test_an_image_server_html_page_with_200_is_invalid_image_quoting_it() -> None:
    class HtmlA1111(ScriptedA1111):
        def _handler_class(self) -> Any:
            handler = super()._handler_class()

            class Html(handler):  # type: ignore[misc, valid-type]
                def do_POST(self) -> None:  # noqa: N802 - http.server's name
                    length = int(self.headers.get("Content-Length") or 0)
                    self.rfile.read(length)
                    page = HTML_PAGE.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)

            return Html

    with HtmlA1111() as server:
        painter = A1111ImageBackend(server.url, timeout_s=TIMEOUT_S)
        outcome = within_deadline(lambda: painter.generate(image_request()))
    assert outcome.finished
    message = assert_one_line(outcome.error, InvalidImage)
    assert "not JSON" in message
    assert "Bad Gateway" in message


def test_an_image_server_sending_a_decompression_bomb_header_is_invalid_image() -> None:
    body = {"images": [_b64(_png_header_only(20000, 20000))]}
    with _A1111Answer(body) as server:
        painter = A1111ImageBackend(server.url, timeout_s=TIMEOUT_S)
        outcome = within_deadline(lambda: painter.generate(image_request()))
    assert outcome.finished
    assert_one_line(outcome.error, InvalidImage)
