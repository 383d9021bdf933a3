"""The layout of the code holds: layers, no Prefect below tasks, no import cycle.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``) and are
checked by import-linter on the real import graph of the source tree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT


def test_imports_follow_the_layers_and_no_package_has_a_cycle() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
