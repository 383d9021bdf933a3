"""Real servers on loopback for tests and benchmarks, stopped by whoever starts them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(
    argv: Sequence[str], ready_url: str, env: Mapping[str, str], timeout_s: float = 90
) -> Iterator[None]:
    """Start ``argv``, wait until ``ready_url`` answers 200, and stop it on leaving.

    Raises ``RuntimeError`` with the end of the server's log when it exits or
    does not answer in ``timeout_s``.
    """
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(list(argv), env=dict(env), stdout=log, stderr=subprocess.STDOUT)

        def tail() -> str:
            log.seek(0)
            return log.read()[-2000:].decode("utf-8", "replace")

        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"{argv[2]} exited: {tail()}")
                try:
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[2]} did not answer in {timeout_s} s: {tail()}")
                time.sleep(0.3)
            yield
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


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
def mlx_lm_server(model: Path) -> Iterator[str]:
    """Run ``mlx_lm.server`` on ``model`` at a free 127.0.0.1 port; yield its /v1 URL."""
    port = free_port()
    with tempfile.TemporaryDirectory() as hub:
        # mlx_lm.server lists the hub cache for /v1/models: it must exist.
        env = {**os.environ, "HF_HUB_CACHE": hub, "HF_HUB_OFFLINE": "1"}
        argv = [sys.executable, "-m", "mlx_lm.server", "--model", str(model)]
        url = f"http://127.0.0.1:{port}/v1"
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        with running_server(argv, f"{url}/models", env):
            yield url


@contextmanager
def mlx_vlm_server(model: Path) -> Iterator[str]:
    """Run ``mlx_vlm.server`` on ``model`` at a free 127.0.0.1 port; yield its /v1 URL.

    Requests must name the model by its path (``model=str(model)``). Raises
    ``RuntimeError`` with the server's log when it exits or does not answer.
    """
    port = free_port()
    with tempfile.TemporaryDirectory() as hub:
        # An empty hub cache and offline mode: nothing is looked up or fetched.
        env = {**os.environ, "HF_HUB_CACHE": hub, "HF_HUB_OFFLINE": "1"}
        # Without --host it binds every interface; loopback is all a test needs.
        argv = [sys.executable, "-m", "mlx_vlm.server", "--model", str(model)]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        url = f"http://127.0.0.1:{port}/v1"
        with running_server(argv, f"{url}/models", env):
            yield url


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
