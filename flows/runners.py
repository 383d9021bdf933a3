"""Where a run's steps execute: threads of this process, or a Dask cluster.

``settings.task_runner = "threads"`` (the default) runs every step in this
process. ``"dask"`` hands them to prefect-dask's ``DaskTaskRunner``: on the
cluster at ``settings.dask_address``, or on a local cluster of
``settings.dask_workers`` worker processes. A model loaded in process (the
diffusers image kind) would then load once per worker, so its steps carry the
tag ``gpu`` and a Prefect concurrency limit on that tag
(``settings.gpu_slots``) keeps at most that many at once across the cluster.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from backends import registry
from hyperlocal.errors import ConfigurationError
from hyperlocal.settings import Settings

#: Tag of the steps that hold an accelerator (in-process image generation).
GPU_TAG = "gpu"


def task_runner_for(settings: Settings) -> Any:
    """Return the task runner the settings ask for (None: Prefect's thread pool).

    Raises ``ConfigurationError`` when ``dask`` is asked for without prefect-dask.
    """
    if settings.task_runner == "threads":
        return None
    if importlib.util.find_spec("prefect_dask") is None:
        raise ConfigurationError(
            "HYPERLOCAL_TASK_RUNNER=dask needs prefect-dask: pip install 'hyperlocal[dask]'"
        )
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": settings.dask_workers, "processes": True},
    )


def holds_gpu(settings: Settings) -> bool:
    """Whether the image steps run a model in process (and so need the GPU slot)."""
    return registry.loads_model("image", settings)


def image_step_tags(settings: Settings) -> set[str]:
    """Return the tags of the image step: ``gpu`` when it holds the accelerator."""
    return {GPU_TAG} if holds_gpu(settings) else set()


async def ensure_gpu_limit(slots: int) -> None:
    """Create (or update) the Prefect concurrency limit on the ``gpu`` tag."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        await client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=slots)
