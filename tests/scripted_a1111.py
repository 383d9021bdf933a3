"""A scripted AUTOMATIC1111-compatible HTTP server for tests: real sockets, painted pictures.

``ScriptedA1111`` listens on 127.0.0.1 (a free port) in a background thread and
serves the documented shapes of ``POST /sdapi/v1/txt2img`` (``images`` as
base64 PNGs, ``parameters``, ``info`` as a JSON string with ``all_seeds``),
``GET /sdapi/v1/sd-models`` and ``GET /sdapi/v1/options``. Pictures are
painted by the builtin painter at the requested size, so the heuristic QC
passes them. A script of ``Step`` injects faults per txt2img request (used in
order, the last one repeating); every request is recorded, headers kept out
of ``repr`` so credentials never land in test output.
"""

from __future__ import annotations

import base64
import io
import json
import random
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from PIL import Image

from hyperlocal.layout.designs import place_design
from tests.servers import BackgroundHTTPServer

Picture = Literal["painted", "not_png", "jpeg", "one_pixel", "data_uri"]
CHECKPOINTS = (
    "sd_xl_base_1.0.safetensors [31e35c80fc]",
    "juggernautXL_v9.safetensors [c9e3e68f89]",
)


@dataclass(frozen=True)
class Step:
    """One scripted txt2img answer: a status (with FastAPI-style ``detail``), a delay, a picture."""

    status: int = 200
    detail: Any = "Not Found"
    delay_s: float = 0.0
    picture: Picture = "painted"
    #: The seed the answer reports using (a server that re-seeds); None: the request's.
    seed: int | None = None


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str] = field(repr=False)
    body: Any
    arrived: float


class ScriptedA1111(BackgroundHTTPServer):
    """The server; use as a context manager (started on enter, stopped on exit)."""

    def __init__(
        self,
        script: Sequence[Step] = (),
        *,
        api: bool = True,
        options: bool = True,
        checkpoints: Sequence[str] = CHECKPOINTS,
        auth: tuple[str, str] | None = None,
    ) -> None:
        """Serve ``script`` for txt2img; ``api=False`` acts like a server started without --api.

        ``auth`` (user, password) makes every request without that Basic auth a 401.
        """
        self.script = list(script)
        self.api = api
        self.options = options
        self.checkpoints = list(checkpoints)
        self.current = self.checkpoints[0] if self.checkpoints else None
        self.requests: list[Recorded] = []
        self._auth = (
            "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode() if auth else None
        )
        self._lock = threading.Lock()
        self._next = 0
        super().__init__(self._handler_class())

    @property
    def url(self) -> str:
        """The API URL a backend is given: ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def txt2img_requests(self) -> list[Recorded]:
        """The txt2img requests received, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/txt2img")]

    def _step(self) -> Step:
        with self._lock:
            if not self.script:
                return Step()
            step = self.script[min(self._next, len(self.script) - 1)]
            self._next += 1
            return step

    def _reply_for(self, request: Recorded) -> tuple[int, Any, float]:
        """Return (status, JSON body, delay) for ``request``."""
        if self._auth and request.headers.get("authorization") != self._auth:
            return 401, {"detail": "Incorrect username or password"}, 0.0
        path = request.path.split("?", 1)[0].rstrip("/")
        if not self.api or not path.startswith("/sdapi/v1/"):
            return 404, {"detail": "Not Found"}, 0.0
        if request.method == "GET" and path == "/sdapi/v1/sd-models":
            return 200, [_model_entry(title) for title in self.checkpoints], 0.0
        if request.method == "GET" and path == "/sdapi/v1/options" and self.options:
            return 200, {"sd_model_checkpoint": self.current, "samples_format": "png"}, 0.0
        if request.method == "POST" and path == "/sdapi/v1/txt2img":
            step = self._step()
            if step.status != 200:
                return step.status, {"detail": step.detail}, step.delay_s
            body = dict(request.body or {})
            if step.seed is not None:
                body["seed"] = step.seed
            return 200, _txt2img(body, step.picture), step.delay_s
        return 404, {"detail": "Not Found"}, 0.0

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
                status, reply, delay_s = server._reply_for(record)
                if delay_s:
                    server.stopping.wait(delay_s)
                data = json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            do_GET = _handle  # noqa: N815 - the names http.server dispatches to
            do_POST = _handle  # noqa: N815

        return Handler


def _model_entry(title: str) -> dict[str, Any]:
    name = title.split(" [", 1)[0]
    return {
        "title": title,
        "model_name": name.rsplit(".", 1)[0],
        "hash": title.rsplit("[", 1)[-1].rstrip("]") if "[" in title else None,
        "filename": f"/models/Stable-diffusion/{name}",
        "config": None,
    }


def _txt2img(body: dict[str, Any], picture: Picture) -> dict[str, Any]:
    """Return A1111's txt2img answer for ``body``, painting the picture asked for."""
    width, height = int(body.get("width", 512)), int(body.get("height", 512))
    seed = int(body.get("seed", -1))
    if seed == -1:
        seed = random.randrange(2**32)  # what A1111 does with -1
    encoded = base64.b64encode(_picture_bytes(picture, seed, width, height)).decode()
    if picture == "data_uri":
        encoded = "data:image/png;base64," + encoded
    info = {
        "prompt": body.get("prompt", ""),
        "negative_prompt": body.get("negative_prompt", ""),
        "seed": seed,
        "all_seeds": [seed],
        "subseed": seed + 1,
        "all_subseeds": [seed + 1],
        "width": width,
        "height": height,
        "sampler_name": body.get("sampler_name", "Euler"),
        "cfg_scale": body.get("cfg_scale", 7.0),
        "steps": body.get("steps", 20),
    }
    return {"images": [encoded], "parameters": body, "info": json.dumps(info)}


def _picture_bytes(picture: Picture, seed: int, width: int, height: int) -> bytes:
    if picture == "not_png":
        return b"<html>this is not a picture</html>"
    if picture in ("jpeg", "one_pixel"):
        size = (1, 1) if picture == "one_pixel" else (width, height)
        buffer = io.BytesIO()
        Image.new("RGB", size, (0, 0, 0)).save(
            buffer, format="JPEG" if picture == "jpeg" else "PNG"
        )
        return buffer.getvalue()
    # Imported here: the painter is the heavy part, and only painted answers need it.
    from hyperlocal.layout.formats import FORMATS
    from tests.pictures import painted

    # The server cannot know the flyer format: square pictures get the square format's zone.
    zone = place_design(FORMATS["square" if width == height else "letter"], "frosted").text_zone
    return painted(seed % 2**32, width, height, zone).png


def closed_port_url() -> str:
    """Return a loopback API URL on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"http://127.0.0.1:{port}"
