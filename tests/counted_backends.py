"""Backends that count their calls, for tests that must see how much model work ran.

``python -m tests.counted_backends [flyer CLI args]`` runs the real command line
with the builtin backends wrapped in counters and prints the counts as the last
line (``CALLS {...}``), so a test can count model work in a fresh process.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from typing import Any, ClassVar

from backends import registry
from hyperlocal.settings import Settings


class Counted:
    """Wraps a backend; counts each call of its role's methods."""

    calls: ClassVar[Counter[str]] = Counter()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in {"write_copy", "direct_art", "generate", "check"}:
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            with Counted._lock:
                Counted.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


def install() -> None:
    """Wrap the builtin text, image and vision backends in counters."""
    for role, kind in (("text", "builtin"), ("image", "builtin"), ("vision", "heuristic")):
        original = registry._BUILDERS[(role, kind)]

        def builder(settings: Settings, original: Any = original) -> Any:
            return Counted(original(settings))

        registry.register(role, kind, builder)  # type: ignore[arg-type]


if __name__ == "__main__":
    from flows.flyer import main

    install()
    code = main(sys.argv[1:])
    print("CALLS " + json.dumps(dict(Counted.calls)))
    sys.exit(code)
