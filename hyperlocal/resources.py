"""Files Hyperlocal ships as package data: the Typst template and the example brief.

They are found with ``importlib.resources``, so a wheel, ``pip install .`` or a
Docker image has them as well as a source checkout (where ``templates/`` and
``examples/`` are installed as ``hyperlocal.templates`` and ``hyperlocal.examples``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from hyperlocal.errors import ConfigurationError


def packaged_file(package: str, *parts: str) -> Path:
    """Return the path of a file shipped in ``package``.

    Raises ``ConfigurationError`` when the package is not on the file system (a
    zipped install, which Typst cannot read from) or the file is missing.
    """
    resource = files(package).joinpath(*parts)
    if not isinstance(resource, Path) or not resource.is_file():
        raise ConfigurationError(
            f"{package}/{'/'.join(parts)} is missing from this installation of Hyperlocal; "
            "reinstall it (pip install hyperlocal) from an unzipped wheel or a checkout"
        )
    return resource


def flyer_template() -> Path:
    """Return the packaged Typst flyer template; raises ``ConfigurationError`` when missing."""
    return packaged_file("hyperlocal.templates", "flyer.typ")


def example_brief() -> Path:
    """Return the packaged example brief (a bakery, with its logo beside it).

    Raises ``ConfigurationError`` when it is missing.
    """
    return packaged_file("hyperlocal.examples", "briefs", "bakery.toml")
