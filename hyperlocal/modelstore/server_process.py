"""Local model servers as child processes: started, waited for, and stopped with their children.

Each server runs in its own session (its own process group), so stopping it
reaches whatever it spawned too (vllm-mlx engine workers, tokenizer pools):
SIGTERM to the group, a grace period, then SIGKILL to whatever is left. Its
output goes to a log file; when it exits early or never answers its health
endpoint, the error carries the last lines of that log.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx
from pydantic import BaseModel, ConfigDict

from hyperlocal.errors import ConfigurationError

#: prctl option: the signal a process gets when the thread that started it ends.
_PR_SET_PDEATHSIG = 1
#: How often a starting server's health endpoint is asked.
POLL_S = 0.3
#: Seconds a stopped server's group has to exit before it is killed.
STOP_GRACE_S = 15.0


class ServerStartError(ConfigurationError):
    """A server exited while starting or did not answer its health endpoint in time."""

    label = "server error"
    #: A server that would not start is a failed run (its log says why), not a setting.
    exit_code = 1


class ServerSpec(BaseModel):
    """What to run and how to tell it is ready."""

    model_config = ConfigDict(frozen=True)

    role: str
    program: str
    model: str = ""
    argv: tuple[str, ...]
    base_url: str
    health_url: str
    env: dict[str, str] = {}

    @property
    def name(self) -> str:
        """How messages call it, e.g. ``text server (mlx_lm.server)``."""
        return f"{self.role} server ({self.program})"


def log_tail(path: Path, lines: int = 15) -> str:
    """Return the last ``lines`` lines of a log file (empty when there is none)."""
    try:
        text = path.read_bytes()[-20_000:].decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunningServer:
    """A started server process; a context manager that stops it on leaving."""

    def __init__(self, spec: ServerSpec, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.spec = spec
        self.process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        """The server's process id (also its process group id)."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the server process is still running."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the server's log."""
        return log_tail(self.log_path, lines)

    def wait_healthy(self, timeout_s: float) -> None:
        """Wait until the health endpoint answers 200.

        Raises ``ServerStartError`` (with the log's last lines) when the process
        exits first or ``timeout_s`` passes; the server is stopped in that case.
        """
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=5, trust_env=False) as client:
            while True:
                if not self.alive():
                    self.stop()
                    raise ServerStartError(
                        self._failure(f"exited with code {self.process.returncode}")
                    )
                try:
                    if client.get(self.spec.health_url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerStartError(self._failure(f"did not answer in {timeout_s:g} s"))
                time.sleep(POLL_S)

    def _failure(self, what: str) -> str:
        tail = self.log_tail()
        where = f"; its log ({self.log_path}) ends:\n{tail}" if tail else f"; see {self.log_path}"
        return f"{self.spec.name} {what} ({self.spec.health_url}){where}"

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the server's process group, then SIGKILL what is left after ``grace_s``."""
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            self.process.poll()
            if not _group_alive(self.pid):
                break
            time.sleep(0.05)
        else:
            self._signal_group(signal.SIGKILL)
        self.process.wait()

    def kill(self) -> None:
        """SIGKILL the whole process group at once (what a crash looks like)."""
        self._signal_group(signal.SIGKILL)
        self.process.wait()

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the starting thread ends."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_server(
    spec: ServerSpec,
    log_path: Path,
    environ: Mapping[str, str] | None = None,
    die_with_parent: bool = False,
) -> RunningServer:
    """Start ``spec`` in its own process group with its output in ``log_path``.

    Its own group keeps a terminal's Ctrl-C away from it (this process stops it,
    children included). With ``die_with_parent`` (Linux) the server also gets
    SIGTERM when the calling thread ends, even by SIGKILL, which no cleanup code
    can catch; start it from the main thread then. Does not wait for it: call
    ``wait_healthy``. Raises ``ServerStartError`` when the program cannot be
    started at all (not installed).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**(os.environ if environ is None else environ), **spec.env}
    preexec = _die_with_parent if die_with_parent and sys.platform == "linux" else None
    with log_path.open("wb") as log:
        try:
            process = subprocess.Popen(
                list(spec.argv),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError as exc:
            raise ServerStartError(
                f"cannot start {spec.name} ({spec.argv[0]}): {exc.strerror or exc}"
            ) from None
    return RunningServer(spec, process, log_path)


def start_all(specs: Sequence[ServerSpec], log_dir: Path, timeout_s: float) -> list[RunningServer]:
    """Start every spec at once (each dies with this thread), then wait until each is healthy.

    Raises ``ServerStartError`` for the first that fails; every server started
    so far is stopped before it propagates (also on Ctrl-C).
    """
    started: list[RunningServer] = []
    try:
        for spec in specs:
            log_path = log_dir / f"{spec.role}-server.log"
            started.append(start_server(spec, log_path, die_with_parent=True))
        for server in started:
            server.wait_healthy(timeout_s)
    except BaseException:
        for server in started:
            server.stop()
        raise
    return started
