"""Checking a picture before it reaches a flyer."""

from __future__ import annotations

from prefect import task

from backends import registry
from backends.base import CheckRequest
from hyperlocal.models import CheckedPicture
from hyperlocal.settings import Settings
from tasks.caching import backend_step_policy
from tasks.log import step_logger
from tasks.model_work import model_work


@task(name="check_image", cache_policy=backend_step_policy("vision"), persist_result=True)
def check_image(request: CheckRequest, settings: Settings) -> CheckedPicture:
    """Return the verdict on one picture from the vision backend, with the model work behind it.

    Raises the backend's faults (``PassingFault`` is retried by the task).
    """
    backend = registry.vision_backend(settings)
    with model_work("check_image", None, backend.identity.label) as log:
        report = backend.check(request, log)
    logger = step_logger()
    if report.passed:
        logger.info("picture seed %d passed QC (score %.1f)", request.image.seed, report.score)
    else:
        logger.warning(
            "picture seed %d failed QC (score %.1f): %s",
            request.image.seed,
            report.score,
            "; ".join(report.reasons),
        )
    return CheckedPicture(report=report, work=log.record())
