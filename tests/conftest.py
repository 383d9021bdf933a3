"""Shared fixtures: an isolated environment per test and one Prefect server per session.

Every test runs with no HYPERLOCAL_* variables from the machine, and its own
cache and output folders. Flow tests share one real ``prefect server`` on a
free loopback port (starting one per test would cost 10+ seconds each).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import registry
from tests.servers import prefect_server

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LEGACY_NAMES = ("SDXL_API_URL", "SDXL_STEPS", "SDXL_CFG_SCALE")


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prefect home folder of the test session's own (database, settings)."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture(scope="session")
def prefect_api(prefect_home: Path) -> Iterator[str]:
    """Start a real Prefect server on loopback for the session; yield its API URL."""
    with prefect_server(prefect_home) as url:
        yield url


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
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_LOGGING_TO_API_ENABLED,
        temporary_settings,
    )

    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Run logs would still be flushing to the server after the session stops it.
    monkeypatch.setenv("PREFECT_LOGGING_TO_API_ENABLED", "false")
    # Prefect reads its settings once at import: set them for this process too.
    updates = {PREFECT_API_URL: prefect_api, PREFECT_LOGGING_TO_API_ENABLED: False}
    with temporary_settings(updates=updates):
        yield prefect_api
