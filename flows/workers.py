"""Model workers: keep the models loaded and run the model steps of every flyer run.

    python -m flows.workers                   # serve the steps of the models in settings
    python -m flows.workers --image-slots 2   # two pictures at once on this machine's GPU

The worker connects to the Prefect server the flyer runs use (``PREFECT_API_URL``,
or one running at Prefect's local address; ``--server start`` starts one), serves
the steps of every role whose model loads in process (mlx text, diffusers image, mlx
vision) and stays until Ctrl-C or SIGTERM. Runs from the command line, the Prefect
UI and schedules then hand those steps to it (``flows.model_workers``): the models
load once, in the worker, instead of once per run. Several workers (one per GPU
machine) share the work; each paints at most ``--image-slots`` pictures at once.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

from backends.loaded_models import on_model_load
from flows.cli import EXIT_OK, add_verbose_flag, output_console, run_command, whole_number
from flows.prefect_api import ServerChoice, prefect_api, ui_address
from hyperlocal.errors import ConfigurationError
from hyperlocal.settings import Settings, load_settings


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.workers",
        description="Serve the model steps of flyer runs with the models kept loaded.",
    )
    parser.add_argument(
        "--image-slots",
        type=whole_number(1, 16),
        default=1,
        help="pictures painted at once by this worker (default 1: one GPU, one picture)",
    )
    parser.add_argument(
        "--limit",
        type=whole_number(1, 64),
        default=4,
        help="text and vision steps run at once by this worker (default 4)",
    )
    parser.add_argument(
        "--server",
        choices=("auto", "start"),
        help="auto: PREFECT_API_URL or a server running at Prefect's local address; "
        "start: the same, starting one in the background when none runs",
    )
    add_verbose_flag(parser)
    return parser


def worker_groups(
    settings: Settings, image_slots: int, limit: int
) -> list[tuple[str, list[Any], int]]:
    """Return (what, tasks, concurrency) for each task worker this process runs.

    The image steps get their own worker so that ``image_slots`` bounds the pictures
    painted at once, whatever the text and vision steps do. Raises
    ``ConfigurationError`` when no role of ``settings`` loads a model in process.
    """
    from backends import registry
    from flows.model_workers import in_process_roles, served_steps

    roles = in_process_roles(settings)
    if not roles:
        raise ConfigurationError(
            "no model to keep loaded: these settings load no model in process (the mlx "
            "text or vision kind, or the diffusers image kind); set HYPERLOCAL_TEXT__MODEL, "
            "HYPERLOCAL_IMAGE__MODEL or HYPERLOCAL_VISION__MODEL as the runs do"
        )
    # Built now: a configuration error stops the worker before it takes any step.
    built = registry.build_run_backends(
        settings, skip=[r for r in ("text", "image", "vision") if r not in roles]
    )
    groups: list[tuple[str, list[Any], int]] = []
    hooks: dict[str, Any] = {"on_completion": [say_finished], "on_failure": [say_finished]}
    for role, slots in (("image", image_slots), ("text", limit), ("vision", limit)):
        if role in built:
            label = f"{role} ({built[role].identity.label})"
            groups.append((label, served_steps(settings, [role], **hooks), slots))
    return groups


def say_finished(task: Any, task_run: Any, state: Any) -> None:
    """Print one line per step this worker ran: which, for which run, how it ended."""
    seconds = task_run.total_run_time.total_seconds() if task_run.total_run_time else 0.0
    how = "from the cache" if state.name == "Cached" else f"{state.name.lower()}, {seconds:.1f} s"
    output_console().print(f"{task_run.name}: {how}", markup=False, highlight=False)


async def serve_groups(groups: list[tuple[str, list[Any], int]]) -> None:
    """Run one Prefect task worker per group until interrupted."""
    from prefect.task_worker import TaskWorker

    workers = [TaskWorker(*tasks, limit=slots) for _what, tasks, slots in groups]
    await asyncio.gather(*(worker.astart() for worker in workers))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code.

    0: stopped by Ctrl-C or SIGTERM; 2: bad settings or no Prefect server (one line).
    """
    args = build_parser().parse_args(argv)
    # Started in the background by a shell (`... &`), SIGINT is ignored; `kill -INT` must stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return run_command(
        lambda: _main(args),
        verbose=args.verbose,
        interrupted="model workers stopped",
        interrupted_exit=EXIT_OK,
    )


def _main(args: argparse.Namespace) -> int:
    console = output_console()
    settings = load_settings()
    choice: ServerChoice = args.server or (
        "auto" if settings.prefect_server == "temporary" else settings.prefect_server
    )
    with prefect_api(choice, say=console.print) as api_url:
        if api_url is None:
            raise ConfigurationError(
                "model workers need a Prefect server that the runs use too: start one "
                "(prefect server start, or run this with --server start) or set PREFECT_API_URL"
            )
        groups = worker_groups(settings, args.image_slots, args.limit)
        on_model_load(
            lambda key, seconds: console.print(
                f"loaded {key} in {seconds:.1f} s; it stays loaded for later runs", markup=False
            )
        )
        for what, _tasks, slots in groups:
            console.print(f"serving the {what} steps, {slots} at once")
        console.print(
            f"waiting for runs on {ui_address(api_url)}; Ctrl-C stops the workers", markup=False
        )
        try:
            asyncio.run(serve_groups(groups))
        except BaseException as exc:
            if not _stopped(exc):
                raise
            console.print("model workers stopped")
    return EXIT_OK


def _stopped(exc: BaseException) -> bool:
    """Whether ``exc`` is how Prefect's task workers end on SIGTERM (alone or grouped)."""
    from prefect.task_worker import StopTaskWorker

    if isinstance(exc, BaseExceptionGroup):
        return all(_stopped(inner) for inner in exc.exceptions)
    return isinstance(exc, StopTaskWorker | asyncio.CancelledError)


if __name__ == "__main__":
    # The importable module, as in flows.flyer: the served tasks must be the same objects.
    from flows.workers import main as importable_main

    sys.exit(importable_main())
