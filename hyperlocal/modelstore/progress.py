"""How a download reports its progress: a protocol, and occasional log lines."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


def human_bytes(count: int | None) -> str:
    """Return ``count`` bytes as a short human size (``4.0 MB``)."""
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


class TransferProgress(Protocol):
    """What a download reports as it goes (a progress bar, or occasional log lines)."""

    def start(self, name: str, total: int | None, completed: int) -> None:
        """A transfer of ``name`` begins (or resumes) with ``completed`` of ``total`` bytes."""

    def advance(self, count: int) -> None:
        """``count`` more bytes arrived."""

    def finish(self) -> None:
        """The transfer ended (done or not)."""


class LineProgress:
    """Progress as plain lines: at the start, every 10 % or ``every_s`` seconds, at the end."""

    def __init__(self, write: Callable[[str], None], every_s: float = 10.0) -> None:
        self.write = write
        self.every_s = every_s
        self._name = ""
        self._total: int | None = None
        self._done = 0
        self._shown_at = 0.0
        self._shown_tenth = -1
        self._started = 0.0

    def start(self, name: str, total: int | None, completed: int) -> None:
        """Print where the transfer begins."""
        self._name, self._total, self._done = name, total, completed
        self._started = self._shown_at = time.monotonic()
        self._shown_tenth = self._tenth()
        whole = f" of {human_bytes(total)}" if total else ""
        begun = f", resuming at {human_bytes(completed)}" if completed else ""
        self.write(f"downloading {name}{whole}{begun}")

    def _tenth(self) -> int:
        return self._done * 10 // self._total if self._total else -1

    def advance(self, count: int) -> None:
        """Print a line when another tenth is done or ``every_s`` passed."""
        self._done += count
        now = time.monotonic()
        tenth = self._tenth()
        if tenth > self._shown_tenth or now - self._shown_at >= self.every_s:
            self._shown_tenth, self._shown_at = tenth, now
            share = f" ({self._done * 100 // self._total} %)" if self._total else ""
            self.write(f"  {self._name}: {human_bytes(self._done)}{share}")

    def finish(self) -> None:
        """Nothing more to say: the caller reports the outcome."""


class NoProgress:
    def start(self, name: str, total: int | None, completed: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def finish(self) -> None:
        pass
