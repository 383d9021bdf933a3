"""Hyperlocal as an installed package: a wheel holds every module and its data files, and a
non-editable install makes a flyer from any folder.

The wheel is built from a copy of the source tree (nothing is written into the
checkout) without build isolation, so no network is needed. It is installed into
a fresh virtual environment whose only other packages are this environment's
dependencies (a ``.pth`` line): the ``hyperlocal`` it imports is the wheel's, not
the checkout's editable one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

#: The source tree's packages, as installed (the two data folders are mapped into hyperlocal).
PACKAGE_FOLDERS = {
    "hyperlocal": "hyperlocal",
    "backends": "backends",
    "tasks": "tasks",
    "flows": "flows",
    "templates": "hyperlocal/templates",
    "examples": "hyperlocal/examples",
}
PIP = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
DATA_FILES = [
    "hyperlocal/templates/flyer.typ",
    "hyperlocal/examples/briefs/bakery.toml",
    "hyperlocal/examples/briefs/rosies-logo.png",
]


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the project's wheel from a copy of the source tree; return its path."""
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(PROJECT_ROOT / name, source / name)
    for folder in PACKAGE_FOLDERS:
        shutil.copytree(PROJECT_ROOT / folder, source / folder, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    _run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(source)],
        cwd=source,
    )
    (built,) = out.glob("hyperlocal-*.whl")
    return built


def test_the_wheel_holds_every_module_the_template_and_the_example_brief(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set(DATA_FILES)
    for folder, installed in PACKAGE_FOLDERS.items():
        for module in (PROJECT_ROOT / folder).rglob("*.py"):
            if "__pycache__" not in module.parts:
                relative = module.relative_to(PROJECT_ROOT / folder).as_posix()
                expected.add(f"{installed}/{relative}")
    assert expected - names == set()
    assert not any(name.startswith(("tests/", "bench/")) for name in names)


@pytest.mark.slow
def test_a_non_editable_install_makes_a_flyer_from_another_folder(
    wheel: Path, tmp_path: Path, prefect_env: str
) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path
        ).strip()
    )
    # The dependencies come from this environment; hyperlocal only from the wheel.
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(
        # --python: pip installs into that environment (--prefix would also uninstall
        # this environment's editable hyperlocal first).
        [*PIP, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        cwd=tmp_path,
    )
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("HYPERLOCAL_", "PYTHON"))
    }
    env |= {
        "HYPERLOCAL_OUTPUT_DIR": str(elsewhere / "output"),
        "HYPERLOCAL_CACHE_DIR": str(elsewhere / "cache"),
        "HYPERLOCAL_CONFIG": str(elsewhere / "no-such-hyperlocal.toml"),
    }
    where = _run(
        [str(python), "-c", "import hyperlocal, flows; print(hyperlocal.__file__, flows.__file__)"],
        elsewhere,
        env,
    )
    assert all(path.startswith(str(site)) for path in where.split()), where
    # The console script, run by the new environment's Python: the example brief, from
    # the package data, with its logo.
    output = _run(
        [str(python), str(venv / "bin" / "hyperlocal"), "--variants", "1", "--format", "square"],
        elsewhere,
        env,
    )
    assert "Flyers in" in output
    (folder,) = (elsewhere / "output" / "flyer_runs").iterdir()
    assert (folder / "variant_01_square.png").is_file()
    assert str(PROJECT_ROOT) not in (folder / "manifest.json").read_text(encoding="utf-8")
