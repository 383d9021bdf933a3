"""Which Prefect server a command talks to: the configured one, a running local one, or a
temporary one.

Without ``PREFECT_API_URL`` Prefect starts a temporary server inside every command
(about 7 s of a short run here) and forgets its runs when the command ends. A server
already running at Prefect's local address (``prefect server start``, by default
http://127.0.0.1:4200) is used instead, and the command says so; with
``prefect_server = "start"`` (``--server start``) one is started in the background
first and later commands find it running (``prefect server stop`` stops it).
``prefect_server = "temporary"`` always takes the temporary one.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import httpx

from hyperlocal.errors import ConfigurationError

ServerChoice = Literal["auto", "start", "temporary"]

#: How long a local server may take to answer its health check before it counts as absent.
PROBE_TIMEOUT_S = 0.5
#: How long a server started in the background may take to become healthy.
START_TIMEOUT_S = 90.0


def configured_api_url() -> str | None:
    """Return ``PREFECT_API_URL`` as Prefect reads it (environment or profile), or None."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url).rstrip("/") if url else None


def local_api_url() -> str:
    """Return the API address of a server started on this machine with Prefect's settings."""
    from prefect.settings import get_current_settings

    api = get_current_settings().server.api
    host = "127.0.0.1" if api.host in ("0.0.0.0", "::", "") else api.host
    return f"http://{host}:{api.port}/api"


def is_healthy(api_url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a Prefect server answers its health check at ``api_url`` within ``timeout_s``."""
    try:
        response = httpx.get(f"{api_url}/health", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def start_background_server(api_url: str, timeout_s: float = START_TIMEOUT_S) -> Path:
    """Start ``prefect server start`` detached from this command; wait until it is healthy.

    Not ``--background``: Prefect leaves that server's output on pipes to a process that
    exits at once, and the server dies at its first log line after that. This one logs
    to ``<PREFECT_HOME>/server.log`` and records its process in ``server.pid``, so
    ``prefect server stop`` stops it. Returns the log's path. Raises
    ``ConfigurationError`` when it exits or does not answer within ``timeout_s``.
    """
    from prefect.settings import PREFECT_HOME

    home = Path(PREFECT_HOME.value())
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C meant for this command does not stop the server.
            start_new_session=True,
        )
    (home / "server.pid").write_text(str(process.pid))
    deadline = time.monotonic() + timeout_s
    while not is_healthy(api_url):
        if process.poll() is not None:
            (home / "server.pid").unlink(missing_ok=True)
            said = last_line(log_path)
            raise ConfigurationError(f"the Prefect server did not start: {said} (see {log_path})")
        if time.monotonic() >= deadline:
            raise ConfigurationError(
                f"the Prefect server did not answer at {api_url} within {timeout_s:.0f} s "
                f"(see {log_path}; `prefect server stop` stops it)"
            )
        time.sleep(0.25)
    return log_path


def last_line(path: Path) -> str:
    """Return the last non-empty line of a log file, or "no message"."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return next((line.strip() for line in reversed(lines) if line.strip()), "no message")


def ui_address(api_url: str) -> str:
    """Return the UI address of a server from its API address (the URL without ``/api``)."""
    return api_url.removesuffix("/").removesuffix("/api")


@contextlib.contextmanager
def prefect_api(choice: ServerChoice, say: Callable[[str], None]) -> Iterator[str | None]:
    """Point Prefect at the server ``choice`` leads to while inside; yield its API URL.

    Yields None for Prefect's temporary server. ``say`` gets one line naming a
    found or started server. Raises ``ConfigurationError`` when a background
    server cannot be started.
    """
    configured = configured_api_url()
    if configured is not None or choice == "temporary":
        yield configured
        return
    url = local_api_url()
    if is_healthy(url):
        say(f"using the Prefect server at {ui_address(url)} (runs are listed in its UI)")
    elif choice == "start":
        say(f"starting a Prefect server in the background at {ui_address(url)} ...")
        log_path = start_background_server(url)
        say(f"it keeps running for later commands (log: {log_path}); `prefect server stop` ends it")
    else:
        yield None
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield url
