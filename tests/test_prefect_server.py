"""The command line finds a running Prefect server by itself, and starts one when asked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.prefect_api import is_healthy
from tests.conftest import PROJECT_ROOT
from tests.servers import free_port


def _command(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_server_start_leaves_a_server_that_later_runs_use_and_prefect_server_stop_ends(
    tmp_path: Path,
) -> None:
    port = free_port()
    home = tmp_path / "prefect-home"
    env = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
        }
    )
    api = f"http://127.0.0.1:{port}/api"
    flyer = ("flows.flyer", "--variants", "1", "--format", "square")
    try:
        started = _command(env, *flyer, "--server", "start")
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"starting a Prefect server in the background at http://127.0.0.1:{port}" in (
            started.stdout
        )
        assert is_healthy(api), "the started server did not outlive the command"
        # The next command finds it without being told, and says so.
        again = _command(env, *flyer)
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"using the Prefect server at http://127.0.0.1:{port}" in again.stdout
        assert "every step came from the cache" in again.stdout
        stopped = _command(env, "prefect", "server", "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        deadline = time.monotonic() + 30
        while is_healthy(api):
            assert time.monotonic() < deadline, "prefect server stop left the server running"
            time.sleep(0.2)
    finally:
        pid_file = home / "server.pid"
        if pid_file.exists():  # the test failed before `prefect server stop`
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def test_with_no_server_at_the_local_address_a_run_takes_a_temporary_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_API_PORT, temporary_settings

    from flows.prefect_api import prefect_api

    said: list[str] = []
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # A free port: nothing answers there.
    with (
        temporary_settings(updates={PREFECT_SERVER_API_PORT: free_port()}),
        temporary_settings(restore_defaults={PREFECT_API_URL}),
    ):
        for choice in ("auto", "temporary"):
            with prefect_api(choice, said.append) as url:
                assert url is None
    assert said == []
