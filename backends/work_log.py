"""Collects what a model step does while it runs, for the manifest (``ModelWork``).

A backend receives an optional ``WorkLog`` with each request; every HTTP request or
in-process generation, re-ask and retried fault is written to it, and the task
returns ``log.record()`` next to the answer. Thread-safe: concurrent requests of one
step (a streaming reader and its watchdog) may write at once. ``on_tokens`` lets a
progress display show tokens arriving; it is called outside the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from hyperlocal.models.work import ModelWork

TokenListener = Callable[[int], None]


class WorkLog:
    """A running tally of one step's model work; ``record()`` freezes it."""

    def __init__(self, writer: str = "", on_tokens: TokenListener | None = None) -> None:
        self._lock = threading.Lock()
        self._writer = writer
        self._structured = ""
        self._requests = 0
        self._reasks: list[str] = []
        self._retries: list[str] = []
        self._notes: list[str] = []
        self._cuts: list[str] = []
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._estimated = False
        self._seconds = 0.0
        self._on_tokens = on_tokens

    def writer(self, label: str) -> None:
        """Name the backend whose answer is used (the last one named wins)."""
        with self._lock:
            self._writer = label

    def structured_output(self, how: str) -> None:
        """Say how the answer was held to its schema (``constrained (llguidance)``, ...)."""
        with self._lock:
            self._structured = how

    def request(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        seconds: float,
        *,
        estimated: bool = False,
    ) -> None:
        """Count one finished request and what it took."""
        with self._lock:
            self._requests += 1
            self._prompt_tokens += max(0, prompt_tokens)
            self._completion_tokens += max(0, completion_tokens)
            self._estimated = self._estimated or estimated
            self._seconds += max(0.0, seconds)

    def reask(self, reason: str) -> None:
        """Note that the answer was rejected and asked again, and why."""
        with self._lock:
            self._reasks.append(reason)

    def retry(self, fault: str) -> None:
        """Note a passing fault that the backend retried."""
        with self._lock:
            self._retries.append(fault)

    def note(self, text: str) -> None:
        """Note anything else the manifest should show (once per distinct text)."""
        with self._lock:
            if text not in self._notes:
                self._notes.append(text)

    def cut(self, text: str) -> None:
        """Note a text shortened (or left out) to fit: the flyer carries the cut text."""
        with self._lock:
            if text not in self._cuts:
                self._cuts.append(text)

    def tokens(self, count: int) -> None:
        """Report ``count`` tokens generated so far in the current request (for progress)."""
        if self._on_tokens is not None:
            self._on_tokens(count)

    def record(self) -> ModelWork:
        """Return what was collected so far as a frozen ``ModelWork``."""
        with self._lock:
            return ModelWork(
                writer=self._writer,
                structured_output=self._structured,
                requests=self._requests,
                reasks=list(self._reasks),
                retries=list(self._retries),
                notes=list(self._notes),
                cuts=list(self._cuts),
                prompt_tokens=self._prompt_tokens,
                completion_tokens=self._completion_tokens,
                tokens_estimated=self._estimated,
                seconds=round(self._seconds, 4),
            )
