"""Real servers on loopback for tests and benchmarks, stopped by whoever starts them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
def prefect_server(home: Path) -> Iterator[str]:
    """Run ``prefect server start`` with its own home at a free port; yield its API URL."""
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
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
