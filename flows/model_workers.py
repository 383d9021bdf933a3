"""Model workers: long-lived processes that keep the models loaded and run the model steps.

A flow run starts in a fresh process (a deployment's runner spawns one per run), so a
model loaded in process (mlx-lm, mlx-vlm, diffusers SDXL) would be imported and loaded
again for every run. ``python -m flows.workers`` serves the model steps as Prefect task
workers instead: it subscribes to the run's Prefect server, and each flow run whose
settings load a model in process hands those steps to it (``Task.delay``) rather than
computing them itself. The worker builds its backends once and keeps them, so only its
first step loads a model; every later run finds it loaded.

Which steps go where is decided per run and per role (``deferred_roles``): a role is
deferred when its backend loads a model in process and a worker connected to the run's
server serves every step of it. Server and builtin backends load nothing, so their steps
stay in the run. ``model_workers = "off"`` keeps everything in the run; ``"required"``
stops a run that would need a worker and finds none. A ``--fresh`` run hands its steps
to each step's fresh twin (``fresh_twin``), which a worker serves beside the step.

Results and cache entries are written by the worker into the cache folder the worker's
settings name, and read from there by the run: a worker and the runs it serves share
``HYPERLOCAL_CACHE_DIR`` (and Prefect's ``PREFECT_RESULTS_LOCAL_STORAGE_PATH``, where
the deferred steps' parameters wait): on one machine they do by default; across
machines, point both at shared storage.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from prefect import Task, task

from backends import registry
from backends.registry import Role
from flows.runners import image_step_tags
from hyperlocal.errors import ConfigurationError, PassingFault, StepCancelled
from hyperlocal.settings import Settings
from tasks.caching import result_storage
from tasks.copywriting import write_copy
from tasks.images import generate_image
from tasks.prompts import direct_art, fit_prompt
from tasks.qc import check_image
from tasks.retries import retry_options

#: The steps each role's workers serve. ``fit_prompt`` counts tokens with the image
#: model's own tokenizers, so it goes with the image model.
ROLE_STEPS: dict[Role, tuple[Task[..., Any], ...]] = {
    "text": (write_copy, direct_art),
    "image": (fit_prompt, generate_image),
    "vision": (check_image,),
}
#: How often a run looks at a deferred step's state. Prefect wakes a waiting run on a
#: Completed or Failed event, but a cache hit on the worker ends Cached, which sends no
#: event a waiter listens for: without this poll such a step would wait for ever.
POLL_S = 0.2
#: How long a deferred step may stay unknown to the server before the run gives up on it.
UNRECORDED_LIMIT_S = 60.0
#: What Prefect's distributed future raises for a task run recorded without a state yet.
_NoStateYet = RuntimeError


def step_options(step: Task[..., Any], settings: Settings, fresh: bool) -> dict[str, Any]:
    """Return the options a step runs with under ``settings``: storage, retries, GPU tag."""
    options: dict[str, Any] = {"result_storage": result_storage(settings)}
    options["refresh_cache"] = fresh or None
    if step.name != fit_prompt.name:  # pure: nothing to retry
        options.update(retry_options(settings.retry))
    if step.name == generate_image.name:
        # In-process image models hold the accelerator: tagged for the cluster-wide GPU limit.
        options["tags"] = image_step_tags(settings)
    return options


def configured_step(
    step: Task[..., Any], settings: Settings, fresh: bool, **extra: Any
) -> Task[..., Any]:
    """Return ``step`` with its options, and ``extra`` ones such as state hooks."""
    return step.with_options(**step_options(step, settings, fresh), **extra)


def fresh_twin(step: Task[..., Any]) -> Task[..., Any]:
    """Return a copy of ``step`` under a task key of its own, for runs that ignore the cache.

    A worker runs a step with the options it serves it with, and Prefect's task worker
    re-creates each served task from its function (``with_options``), so the key of a
    ``--fresh`` variant must come from a function of its own: a thin wrapper named
    ``<step>_fresh``. Its source (what the cache key hashes) is the step's own, through
    ``__wrapped__``, so a fresh result lands under the step's usual cache key.
    """
    original = step.fn

    @functools.wraps(original)
    def refreshed(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **kwargs)

    refreshed.__qualname__ = f"{original.__qualname__}_fresh"
    return task(refreshed, name=step.name, cache_policy=step.cache_policy, persist_result=True)


def worker_step(
    step: Task[..., Any], settings: Settings, fresh: bool, **extra: Any
) -> Task[..., Any]:
    """Return ``step`` as a model worker serves it: ``fresh`` as its fresh twin."""
    served = fresh_twin(step) if fresh else step
    return served.with_options(**step_options(step, settings, fresh), **extra)


def served_steps(settings: Settings, roles: Iterable[Role], **extra: Any) -> list[Task[..., Any]]:
    """Return every step a worker for ``roles`` serves, cached and fresh, with ``extra``
    options."""
    return [
        worker_step(step, settings, fresh, **extra)
        for role in roles
        for step in ROLE_STEPS[role]
        for fresh in (False, True)
    ]


def in_process_roles(settings: Settings) -> list[Role]:
    """Return the roles of a run whose backends load a model in the process that runs them."""
    return [role for role in registry.run_roles(settings) if registry.loads_model(role, settings)]


async def connected_task_keys() -> set[str]:
    """Return the task keys served by the task workers connected to the current server."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        response = await client._client.post("/task_workers/filter", json={})
        response.raise_for_status()
        return {key for worker in response.json() for key in worker.get("task_keys", [])}


def deferred_roles(settings: Settings, fresh: bool, server: str | None) -> frozenset[Role]:
    """Return the roles whose steps this run hands to model workers.

    ``server`` is the run's Prefect API URL (None: a temporary server, which no
    worker can reach). Raises ``ConfigurationError`` when ``model_workers`` is
    ``required`` and a role that loads a model has no worker.
    """
    wanted = in_process_roles(settings)
    if settings.model_workers == "off" or not wanted:
        return frozenset()
    if server is None:
        if settings.model_workers == "required":
            raise ConfigurationError(
                "HYPERLOCAL_MODEL_WORKERS=required, but this run has a temporary Prefect "
                "server that no worker can reach: start one (prefect server start) and set "
                "PREFECT_API_URL, or run with --server start"
            )
        return frozenset()
    from prefect.utilities.asyncutils import run_coro_as_sync

    served = run_coro_as_sync(connected_task_keys()) or set()
    roles = frozenset(
        role
        for role in wanted
        if all(worker_step(step, settings, fresh).task_key in served for step in ROLE_STEPS[role])
    )
    missing = [role for role in wanted if role not in roles]
    if missing and settings.model_workers == "required":
        stale = " (workers are connected, but serve other versions of the steps: restart them)"
        raise ConfigurationError(
            f"HYPERLOCAL_MODEL_WORKERS=required, but no model worker serves the "
            f"{' and '.join(missing)} steps at {server}: start one with "
            f"`python -m flows.workers`{stale if served else ''}"
        )
    return roles


def wait_deferred(future: Any, cancelled: Callable[[], bool]) -> Any:
    """Wait for a deferred step's result; return it or raise its fault.

    Raises ``StepCancelled`` (after asking the server to cancel the step, so no
    worker starts it) when ``cancelled()`` turns true first.
    """
    from prefect.exceptions import ObjectNotFound

    unrecorded_until = time.monotonic() + UNRECORDED_LIMIT_S
    while True:
        try:
            future.wait(timeout=POLL_S)
            final = future.state.is_final()
        except (ObjectNotFound, _NoStateYet):
            # The server records a new task run, and then its first state, a moment after
            # ``delay`` returns; Prefect's future raises until both are there.
            if time.monotonic() > unrecorded_until:
                raise PassingFault(
                    f"the Prefect server never recorded the deferred step {future.task_run_id}"
                ) from None
            time.sleep(POLL_S)
            continue
        if final:
            return future.result()
        if cancelled():
            _cancel_task_run(future.task_run_id)
            raise StepCancelled("the run failed elsewhere; the deferred step was cancelled")


def _cancel_task_run(task_run_id: UUID) -> None:
    """Mark a deferred step cancelled: a worker that has not started it never will."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def cancel() -> None:
        async with get_client() as client:
            await client.set_task_run_state(task_run_id, Cancelled(), force=True)

    # The run is failing anyway: a step left Scheduled does no harm beyond a worker's time.
    with contextlib.suppress(Exception):
        run_coro_as_sync(cancel())
