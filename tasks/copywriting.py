"""Copy-writing: the words of one variant, from the text backend."""

from __future__ import annotations

from prefect import task

from backends import registry
from backends.base import CopyRequest
from hyperlocal.errors import InvalidModelOutput
from hyperlocal.fact_scan import contradictions
from hyperlocal.models import WrittenCopy, fact_problems
from hyperlocal.settings import Settings
from tasks.caching import backend_step_policy
from tasks.log import step_logger
from tasks.model_work import model_work


@task(name="write_copy", cache_policy=backend_step_policy("text"), persist_result=True)
def write_copy(request: CopyRequest, settings: Settings) -> WrittenCopy:
    """Return the copy of one variant and the model work behind it.

    The brief's facts are placed verbatim and no written text may name a weekday,
    date, time, amount or address the brief does not back: checked here again,
    whatever the backend. Raises the backend's faults (``PassingFault`` is retried by
    the task), or ``InvalidModelOutput`` when the copy breaks a fact.
    """
    backend = registry.text_backend(settings)
    with model_work("write_copy", request.variant, backend.identity.label) as log:
        copy = backend.write_copy(request, log)
        problems = fact_problems(copy, request.brief) + contradictions(copy, request.brief)
        if problems:
            raise InvalidModelOutput(
                f"variant {request.variant} copy from {backend.identity.label} breaks the "
                "facts: " + "; ".join(problems)
            )
    work = log.record()
    step_logger().info(
        "variant %d copy (%s angle) from %s%s",
        request.variant,
        copy.angle,
        backend.identity.label,
        describe_work(work.requests, len(work.reasks)),
    )
    return WrittenCopy(copy=copy, work=work, backend=backend.identity)


def describe_work(requests: int, reasks: int) -> str:
    """Return ", 3 requests (2 re-asks)" for a log line, or "" when no model was asked."""
    if not requests:
        return ""
    plural = "s" if requests != 1 else ""
    again = f" ({reasks} re-ask{'s' if reasks != 1 else ''})" if reasks else ""
    return f", {requests} request{plural}{again}"
