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

from prefect.runtime import flow_run, task_run

from backends.work_log import WorkLog
from hyperlocal.errors import HyperlocalError, PassingFault, StepCancelled, first_line
from hyperlocal.models import ModelWork
from tasks.progress import token_reporter

#: Passing faults of earlier attempts, by task run id (popped by the next attempt).
_earlier_faults: dict[str, list[str]] = {}
#: Flow runs that have failed: their model steps in this process stop at the next token.
_cancelled_runs: set[str] = set()
_lock = threading.Lock()
_WORK_ATTRIBUTE = "hyperlocal_work"


def cancel_run(run_id: str) -> None:
    """Ask every model step of flow run ``run_id`` in this process to stop at its next token.

    A run that has failed has no use for the answers still being generated: on a
    laptop another variant's generation would hold the model (and the command line)
    for minutes. Generation in process stops between tokens; a streamed server answer
    has its connection closed, which stops the server too.
    """
    with _lock:
        _cancelled_runs.add(run_id)


def run_cancelled(run_id: str) -> bool:
    """Return whether flow run ``run_id`` was cancelled with ``cancel_run``."""
    with _lock:
        return run_id in _cancelled_runs


def raise_if_cancelled(run_id: str) -> None:
    """Raise ``StepCancelled`` when flow run ``run_id`` has been cancelled."""
    if run_cancelled(run_id):
        raise StepCancelled("the run failed elsewhere; this step was stopped")


def work_of(fault: BaseException) -> ModelWork | None:
    """Return the model work a failed step had done, if the fault carries it."""
    work = getattr(fault, _WORK_ATTRIBUTE, None)
    return work if isinstance(work, ModelWork) else None


@contextmanager
def model_work(step: str, variant: int | None, writer: str) -> Iterator[WorkLog]:
    """Yield the log of one attempt of a model step; a fault leaves with the work attached.

    Earlier attempts' passing faults of the same task run are listed as retries;
    progress of a growing answer goes to the run's progress listener, and a growing
    answer of a cancelled run (``cancel_run``) stops with ``StepCancelled``.
    """
    run_id = str(task_run.id or "")
    parent = str(flow_run.id or "")
    report = token_reporter(step, variant)

    def on_tokens(count: int) -> None:
        # Called between tokens: the place where a failed run stops this generation.
        raise_if_cancelled(parent)
        if report is not None:
            report(count)

    log = WorkLog(writer, on_tokens)
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
