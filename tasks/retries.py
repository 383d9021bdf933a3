"""Which failures a task retries: passing faults only (DESIGN.md, "Faults")."""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

from hyperlocal.errors import is_passing
from hyperlocal.settings import RetrySettings


def retry_on_passing_fault(task: Any, task_run: Any, state: Any) -> bool:
    """Return True when the failed state holds a passing fault (timeout, refused, 429/5xx).

    A plain function on purpose: Prefect only calls ``retry_condition_fn`` when
    ``inspect.isfunction`` accepts it (a partial or callable object never retries).
    """
    try:
        state.result()
    except Exception as exc:  # the state re-raises the task's own exception
        return is_passing(exc)
    return False


def retry_options(retry: RetrySettings) -> dict[str, Any]:
    """Return the ``Task.with_options`` arguments for retries with backoff and jitter."""
    delays = (
        exponential_backoff(backoff_factor=retry.delay_s)(retry.attempts) if retry.attempts else 0
    )
    return {
        "retries": retry.attempts,
        "retry_delay_seconds": delays,
        "retry_jitter_factor": retry.jitter if retry.attempts else None,
        "retry_condition_fn": retry_on_passing_fault,
    }
