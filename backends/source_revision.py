"""Revisions of code-defined backends, for cache keys."""

from __future__ import annotations

import hashlib
import sys
from functools import cache
from pathlib import Path


@cache
def module_revision(module_name: str) -> str:
    """Return the first 12 hex digits of the sha256 of a loaded module's source file.

    Builtin backends are code, not weights: their revision is their source, so
    editing one invalidates exactly the cached results it produced.
    """
    module = sys.modules[module_name]
    source = Path(module.__file__ or "").read_bytes()
    return hashlib.sha256(source).hexdigest()[:12]
