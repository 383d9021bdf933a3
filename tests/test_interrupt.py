"""Ctrl-C and SIGTERM in the middle of rendering: nothing half-written, and the next run works.

The command line runs in a child process with Prefect's log lines on
(``--verbose``), so the test can tell when typesetting has started and send the
signal right then.

The child must get Ctrl-C handled whatever the test runner inherited: a runner
started as a background job of a non-interactive shell (``pytest ... &`` in a
script, as when suites share a loaded machine) has SIGINT ignored, every child
inherits that, and Python installs no ``KeyboardInterrupt`` handler for an
ignored SIGINT: the signal was dropped, the run finished and exited 0 (SIGTERM,
never ignored that way, always passed).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from PIL import Image

from tests.child_output import read_until
from tests.conftest import PROJECT_ROOT

FORMATS = ["letter", "a4", "half_letter", "square", "portrait", "story"]


@contextlib.contextmanager
def _sigint_handled() -> Iterator[None]:
    """Handle SIGINT in this process while inside, whatever it inherited.

    A handled signal is reset to its default in a child at exec, and Python then
    turns it into ``KeyboardInterrupt``; an ignored one stays ignored in the child.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _popen(argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start ``argv`` in the project folder, output merged, Ctrl-C reaching it as for a user."""
    with _sigint_handled():
        return subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _start(output: Path, cache: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "flows.flyer", "--verbose", "--variants", "3"]
    for name in FORMATS:
        argv += ["--format", name]
    env = {**os.environ, "HYPERLOCAL_OUTPUT_DIR": str(output), "HYPERLOCAL_CACHE_DIR": str(cache)}
    return _popen(argv, env)


def test_a_child_gets_ctrl_c_even_when_the_test_run_ignores_sigint() -> None:
    check = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in `pytest &` from a script
    try:
        child = _popen([sys.executable, "-c", check], dict(os.environ))
        out, _ = child.communicate(timeout=60)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert out.strip() == "True"


def _check_output_is_whole(output: Path) -> list[Path]:
    """Assert no partial or temporary file exists; return the complete run folders."""
    runs = output / "flyer_runs"
    leftovers = [
        p for p in output.rglob("*") if p.name.startswith(".partial-") or p.suffix == ".tmp"
    ]
    assert leftovers == []
    complete = []
    for folder in runs.iterdir() if runs.exists() else []:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        assert sorted(p.name for p in folder.iterdir()) == sorted(manifest["files"])
        complete.append(folder)
    return complete


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_while_rendering_leaves_nothing_half_written_and_the_next_run_completes(
    prefect_env: str, tmp_path: Path, signum: int
) -> None:
    output, cache = tmp_path / "output", tmp_path / "cache"
    process = _start(output, cache)
    try:
        read_until(process, "render_flyer")
        process.send_signal(signum)
        assert process.wait(timeout=120) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert _check_output_is_whole(output) == []

    again = _start(output, cache)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out[-3000:]
    (folder,) = _check_output_is_whole(output)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    # The steps the interrupted run finished came from the cache.
    assert manifest["cached_steps"] > 0
    for name in manifest["files"]:
        if name.endswith(".png"):
            with Image.open(folder / name) as picture:
                picture.verify()
