"""Shared fixtures: an isolated environment per test and one Prefect server per session.

Every test runs with no HYPERLOCAL_* variables from the machine, and its own
cache and output folders. Flow tests share one real ``prefect server`` on a
free loopback port (starting one per test would cost 10+ seconds each).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backends import registry

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LEGACY_NAMES = ("SDXL_API_URL", "SDXL_STEPS", "SDXL_CFG_SCALE")


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prefect home folder of the test session's own (database, settings)."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture(scope="session")
def prefect_api(prefect_home: Path) -> Iterator[str]:
    """Start a real Prefect server on loopback for the session; yield its API URL."""
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = (prefect_home / "server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited: {(prefect_home / 'server.log').read_text()}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prefect server did not become healthy in 90 s")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Clear the machine's Hyperlocal settings; give the test its own cache and output."""
    for name in list(os.environ):
        if name.startswith("HYPERLOCAL_") or name in LEGACY_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HYPERLOCAL_CONFIG", str(tmp_path / "no-such-hyperlocal.toml"))
    monkeypatch.setenv("HYPERLOCAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HYPERLOCAL_OUTPUT_DIR", str(tmp_path / "output"))
    monkeypatch.setenv("HYPERLOCAL_ASSET_DIRS", f'["{PROJECT_ROOT / "examples"}"]')
    monkeypatch.setenv("HYPERLOCAL_RETRY__DELAY_S", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry.clear()
    return tmp_path


@pytest.fixture
def prefect_env(
    prefect_api: str, prefect_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Point this test (and the processes it starts) at the session's Prefect server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect reads its settings once at import: set them for this process too.
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        yield prefect_api
