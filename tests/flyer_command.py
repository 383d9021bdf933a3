"""Runs ``python -m flows.flyer`` as a user would: a child process in the project folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_flyer(
    *args: str, env: dict[str, str], timeout_s: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the flyer command with ``args`` and ``env`` over this process's environment.

    Returns how it ended (exit code, stdout and stderr as text); raises
    ``subprocess.TimeoutExpired`` after ``timeout_s``.
    """
    return subprocess.run(
        [sys.executable, "-m", "flows.flyer", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
