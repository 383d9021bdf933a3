"""The work log of a model step: opened per task attempt, kept across the task's retries.

A text step's answer travels with its ``ModelWork`` (``WrittenCopy``, ``DirectedArt``).
When the step fails, the work done so far rides on the fault (``work_of``), so the
manifest can show the requests of a step whose builtin fallback was used. Prefect
retries a task attempt in the same process, so the passing faults of earlier
attempts are kept here by task run and written into the next attempt's log.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.runtime import task_run

from backends.work_log import WorkLog
from hyperlocal.errors import HyperlocalError, PassingFault, first_line
from hyperlocal.models import ModelWork
from tasks.progress import token_reporter

#: Passing faults of earlier attempts, by task run id (popped by the next attempt).
_earlier_faults: dict[str, list[str]] = {}
_lock = threading.Lock()
_WORK_ATTRIBUTE = "hyperlocal_work"


def work_of(fault: BaseException) -> ModelWork | None:
    """Return the model work a failed step had done, if the fault carries it."""
    work = getattr(fault, _WORK_ATTRIBUTE, None)
    return work if isinstance(work, ModelWork) else None


@contextmanager
def model_work(step: str, variant: int | None, writer: str) -> Iterator[WorkLog]:
    """Yield the log of one attempt of a model step; a fault leaves with the work attached.

    Earlier attempts' passing faults of the same task run are listed as retries;
    progress of a growing answer goes to the run's progress listener.
    """
    run_id = str(task_run.id or "")
    log = WorkLog(writer, token_reporter(step, variant))
    with _lock:
        earlier = _earlier_faults.pop(run_id, []) if run_id else []
    for fault in earlier:
        log.retry(fault)
    try:
        yield log
    except HyperlocalError as exc:
        if isinstance(exc, PassingFault) and run_id:
            with _lock:
                _earlier_faults[run_id] = [*earlier, first_line(exc, default=type(exc).__name__)]
        setattr(exc, _WORK_ATTRIBUTE, log.record())
        raise
