"""Real servers on loopback for tests and benchmarks, stopped by whoever starts them."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import httpx

from flows.servers import server_spec
from hyperlocal.modelstore.server_process import RunningServer, ServerSpec, start_server


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BackgroundHTTPServer:
    """A threaded ``http.server`` on a free 127.0.0.1 port, served while inside ``with``.

    Subclasses pass their request handler class to ``__init__``. ``stopping`` is set
    on leaving, so a handler that waits on purpose (a slow server) ends at once.
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        # Port 0: the kernel picks a free port at bind time, so no other process can take it.
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.stopping = threading.Event()
        # A short poll interval: shutdown() waits for the loop to notice, 0.5 s by default.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


@contextmanager
def running_server(
    argv: Sequence[str], ready_url: str, env: Mapping[str, str], timeout_s: float = 90
) -> Iterator[RunningServer]:
    """Start ``argv``, wait until ``ready_url`` answers 200, and stop it on leaving.

    Uses the project's own server handling (``hyperlocal.modelstore.server_process``), so
    tests start servers the way ``python -m flows.servers`` does. Raises
    ``ServerStartError`` with the end of the server's log when it exits or
    does not answer in ``timeout_s``.
    """
    spec = ServerSpec(
        role="test",
        program=Path(argv[2] if len(argv) > 2 else argv[0]).name,
        argv=tuple(argv),
        base_url=ready_url,
        health_url=ready_url,
    )
    with tempfile.TemporaryDirectory() as logs:
        server = start_server(spec, Path(logs) / "server.log", environ=env, die_with_parent=True)
        with server:
            server.wait_healthy(timeout_s)
            yield server


@contextmanager
def prefect_server(home: Path, ui: bool = False) -> Iterator[str]:
    """Run ``prefect server start`` with its own home at a free port; yield its API URL.

    With ``ui`` the web UI is served too (at the URL without ``/api``).
    """
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "true" if ui else "false",
        # The UI's own calls must go to this port, not the default 4200.
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
    }
    env.pop("PREFECT_API_URL", None)
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    url = f"http://127.0.0.1:{port}/api"
    with running_server([*argv, "--port", str(port)], f"{url}/health", env):
        yield url


@contextmanager
def model_server(
    role: str, kind: str, model: Path, port: int | None = None, log_dir: Path | None = None
) -> Iterator[RunningServer]:
    """Run the ``kind`` server of ``flows.servers`` on ``model`` at 127.0.0.1; yield it.

    Its URL is ``server.spec.base_url``; requests to mlx_vlm.server must name
    the model by its path. ``port`` defaults to a free one.
    """
    spec = server_spec(role, kind, str(model), "127.0.0.1", port or free_port())
    with tempfile.TemporaryDirectory() as hub:
        # An empty hub cache and offline mode: nothing is looked up or fetched.
        env = {**os.environ, "HF_HUB_CACHE": hub}
        logs = log_dir or Path(hub)
        log_path = logs / f"{role}-server.log"
        server = start_server(spec, log_path, environ=env, die_with_parent=True)
        with server:
            server.wait_healthy(90)
            yield server


@contextmanager
def mlx_lm_server(model: Path) -> Iterator[str]:
    """Run ``mlx_lm.server`` on ``model`` at a free 127.0.0.1 port; yield its /v1 URL."""
    with model_server("text", "mlx_lm", model) as server:
        yield server.spec.base_url


@contextmanager
def mlx_vlm_server(model: Path) -> Iterator[str]:
    """Run ``mlx_vlm.server`` on ``model`` at a free 127.0.0.1 port; yield its /v1 URL.

    Requests must name the model by its path (``model=str(model)``). Raises
    ``ServerStartError`` with the server's log when it exits or does not answer.
    """
    with model_server("vision", "mlx_vlm", model) as server:
        yield server.spec.base_url


@dataclass(frozen=True)
class SentRequest:
    """One request a ``RecordingTransport`` passed on, and the status that came back."""

    method: str
    path: str
    structured: bool
    status: int


class RecordingTransport(httpx.BaseTransport):
    """An ``httpx`` transport that sends over the network and keeps a log of every request.

    Lets tests and benchmarks count the chat requests a backend really made, and
    see which carried ``response_format``, without reaching into the backend.
    """

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lock = threading.Lock()
        self.sent: list[SentRequest] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and log it; raises what ``httpx.HTTPTransport`` raises."""
        response = self._inner.handle_request(request)
        structured = b'"response_format"' in request.content
        entry = SentRequest(request.method, request.url.path, structured, response.status_code)
        with self._lock:
            self.sent.append(entry)
        return response

    def chats(self) -> list[SentRequest]:
        """Return the chat completion requests sent so far, oldest first."""
        with self._lock:
            return [s for s in self.sent if s.path.endswith("/chat/completions")]

    def close(self) -> None:
        """Close the network connections."""
        self._inner.close()
