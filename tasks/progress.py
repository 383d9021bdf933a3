"""Progress events of a run: steps starting and finishing, tokens arriving.

The command line sets ``progress_listener`` for the run; the flow's variant threads
and the tasks' threads inherit it with their context and report through ``notify``.
A run with no listener (the Prefect UI, a schedule, a test) reports to nobody.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
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
#: Set by the command line to draw progress; threads inherit it with their context.
progress_listener: contextvars.ContextVar[ProgressListener | None] = contextvars.ContextVar(
    "progress_listener", default=None
)


def notify(event: ProgressEvent) -> None:
    """Hand ``event`` to the run's listener, if there is one; never raises for a missing one."""
    listener = progress_listener.get()
    if listener is not None:
        listener(event)


def token_reporter(step: str, variant: int | None) -> Callable[[int], None] | None:
    """Return a callback that reports a growing answer's token count, or None with no listener."""
    listener = progress_listener.get()
    if listener is None:
        return None

    def report(tokens: int) -> None:
        listener(
            ProgressEvent(variant=variant, format=None, step=step, state="tokens", tokens=tokens)
        )

    return report
