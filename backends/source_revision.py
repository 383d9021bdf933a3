"""Revisions of code-defined backends, for cache keys.

Builtin backends are code, not weights: their revision is their source, so
editing one invalidates exactly the cached results it produced.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path


@cache
def module_revision(module_name: str) -> str:
    """Return the first 12 hex digits of the sha256 of a loaded module's source file.

    Raises ``KeyError`` when the module is not loaded and ``OSError`` when its file
    cannot be read.
    """
    module = sys.modules[module_name]
    source = Path(module.__file__ or "").read_bytes()
    return hashlib.sha256(source).hexdigest()[:12]


def sources_revision(sources: Iterable[bytes]) -> str:
    """Return the first 12 hex digits of one sha256 over several sources, in their order.

    Each source is hashed on its own first, so moving code from one file to the next
    changes the revision too. Never raises.
    """
    combined = hashlib.sha256()
    for source in sources:
        combined.update(hashlib.sha256(source).digest())
    return combined.hexdigest()[:12]


@cache
def files_revision(paths: tuple[Path, ...]) -> str:
    """Return ``sources_revision`` of the files at ``paths``, read once per process.

    For a backend whose code spans several modules. Raises ``OSError`` when a file
    cannot be read.
    """
    return sources_revision(path.read_bytes() for path in paths)
