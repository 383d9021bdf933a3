"""Progress events of a run: steps starting and finishing, tokens arriving.

Two kinds of listener hear them. A display in this process (the command line's
progress lines) registers with ``displayed``: it lives in a process-wide list, never
in a task's context, because a task shipped to a Dask worker is pickled with its
context and a display (a console, a lock, a live terminal) cannot be. The run's
progress artifact sets ``progress_listener``, a context variable that the flow's
variant threads inherit (it pickles: it only holds the artifact's numbers).
``notify`` hands each event to both. A task running on another machine reports to
nobody there; its steps still start and finish in the flow's own threads.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

from pydantic import BaseModel


class ProgressEvent(BaseModel):
    """One step starting or finishing, or a model's answer growing, for a progress display."""

    variant: int | None
    format: str | None
    step: str
    state: Literal["started", "finished", "tokens"]
    cached: bool = False
    attempt: int | None = None
    tokens: int | None = None


ProgressListener = Callable[[ProgressEvent], None]
#: Set by the run's progress artifact; the variant threads inherit it with their context.
progress_listener: contextvars.ContextVar[ProgressListener | None] = contextvars.ContextVar(
    "progress_listener", default=None
)
#: Displays in this process (``displayed``): never part of a context that travels.
_displays: list[ProgressListener] = []
_displays_lock = threading.Lock()


@contextmanager
def displayed(listener: ProgressListener) -> Iterator[None]:
    """Send every progress event of this process to ``listener`` while the block runs."""
    with _displays_lock:
        _displays.append(listener)
    try:
        yield
    finally:
        with _displays_lock:
            _displays.remove(listener)


def _listeners() -> list[ProgressListener]:
    with _displays_lock:
        found = list(_displays)
    context = progress_listener.get()
    return [*found, context] if context is not None else found


def notify(event: ProgressEvent) -> None:
    """Hand ``event`` to every display of this process and to the run's listener, if any."""
    for listener in _listeners():
        listener(event)


def token_reporter(step: str, variant: int | None) -> Callable[[int], None] | None:
    """Return a callback that reports a growing answer's token count, or None with no listener."""
    if not _listeners():
        return None

    def report(tokens: int) -> None:
        notify(
            ProgressEvent(variant=variant, format=None, step=step, state="tokens", tokens=tokens)
        )

    return report
