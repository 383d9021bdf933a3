"""The logger of a step: Prefect's run logger inside a run, a plain one outside."""

from __future__ import annotations

import logging
from typing import Any

from prefect import get_run_logger
from prefect.exceptions import MissingContextError


def step_logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    """Return the run logger in a flow or task run, else the ``hyperlocal`` logger.

    Lets a step's body run alone (``task.fn(...)``, in tests and benchmarks).
    """
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("hyperlocal")
