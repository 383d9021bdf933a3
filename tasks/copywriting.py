"""Copy-writing: the words of one variant, from the text backend."""

from __future__ import annotations

from prefect import task

from backends import registry
from backends.base import CopyRequest
from hyperlocal.errors import InvalidModelOutput
from hyperlocal.models import FlyerCopy, fact_problems
from hyperlocal.settings import Settings
from tasks.caching import backend_step_policy
from tasks.log import step_logger


@task(name="write_copy", cache_policy=backend_step_policy("text"), persist_result=True)
def write_copy(request: CopyRequest, settings: Settings) -> FlyerCopy:
    """Return the copy of one variant, checked to keep every fact of the brief exactly.

    Raises the backend's faults (``PassingFault`` is retried by the task), or
    ``InvalidModelOutput`` when the copy misstates a date, time, place or price.
    """
    backend = registry.text_backend(settings)
    copy = backend.write_copy(request)
    problems = fact_problems(copy, request.brief)
    if problems:
        raise InvalidModelOutput(
            f"variant {request.variant} copy from {backend.identity.label} changed the facts: "
            + "; ".join(problems)
        )
    step_logger().info(
        "variant %d copy (%s angle) from %s", request.variant, copy.angle, backend.identity.label
    )
    return copy
