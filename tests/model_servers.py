"""Real model servers on loopback for tests and benchmarks, stopped by whoever starts them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import free_port


@contextmanager
def mlx_lm_server(model: Path, timeout_s: float = 90) -> Iterator[str]:
    """Run ``mlx_lm.server`` on ``model`` at a free 127.0.0.1 port; yield its /v1 URL."""
    port = free_port()
    with tempfile.TemporaryDirectory() as hub, tempfile.TemporaryFile() as log:
        env = {**os.environ, "HF_HUB_CACHE": hub, "HF_HUB_OFFLINE": "1"}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlx_lm.server",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"mlx_lm.server exited: {log.read()[-2000:]!r}")
                try:
                    if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mlx_lm.server did not answer in {timeout_s} s")
                time.sleep(0.3)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
