"""``python -m flows.deploy``: serve the flyer deployments from one long-running process.

Two deployments, served by this process (no work pool needed):

- ``flyer/make-flyer``: on demand. Its parameters are the ``Brief`` model and the
  run options (profile, variants, formats, print, crop marks), so the Prefect
  UI's "Run" button shows a form with descriptions, dropdowns for the choices
  and validation (``enforce_parameter_schema``).
- ``flyer-batch/weekly-flyers``: on a cron schedule (``HYPERLOCAL_SCHEDULE__CRON``
  in ``HYPERLOCAL_SCHEDULE__TIMEZONE``, Mondays 09:00 by default), flyers for
  every brief in ``HYPERLOCAL_SCHEDULE__BRIEFS``.

Before serving it checks the settings and builds every backend (a configuration
error is one line and exit code 2), and creates the concurrency limit the
in-process image kind needs. Ctrl-C or SIGTERM stops it cleanly. The same
deployments on a work pool (process, Docker, Kubernetes workers) are in
``prefect.yaml``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backends import registry
from flows.batch import batch
from flows.cli import EXIT_OK, add_verbose_flag, run_command
from flows.flyer import flyer_flow
from flows.runners import ensure_gpu_limit, holds_gpu, task_runner_for
from hyperlocal.settings import Settings, load_settings

ON_DEMAND = "make-flyer"
SCHEDULED = "weekly-flyers"
TAGS = ["hyperlocal"]


def build_deployments(settings: Settings) -> list[Any]:
    """Return the on-demand and the scheduled deployment (``RunnerDeployment`` objects)."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    # Runs import the flows by module path (flows.flyer), not by file: loaded from a
    # file, the flow's module is called "flyer", and a step handed to a model worker or
    # a Dask worker carries a reference to that module, which no other process has.
    by_module = EntrypointType.MODULE_PATH
    on_demand = flyer_flow(settings).to_deployment(
        name=ON_DEMAND,
        description=(
            "Make flyers for one brief: fill in who, what, when and where, pick a profile "
            "and the formats, and run."
        ),
        tags=TAGS,
        enforce_parameter_schema=True,
        entrypoint_type=by_module,
    )
    runner = task_runner_for(settings)
    scheduled_flow = batch if runner is None else batch.with_options(task_runner=runner)
    scheduled = scheduled_flow.to_deployment(
        name=SCHEDULED,
        description=f"Flyers for every brief in {settings.schedule.briefs}, on a schedule.",
        tags=TAGS,
        schedules=[Cron(settings.schedule.cron, timezone=settings.schedule.timezone)],
        parameters={"source": str(Path(settings.schedule.briefs).resolve())},
        enforce_parameter_schema=True,
        entrypoint_type=by_module,
    )
    return [on_demand, scheduled]


def prepare(settings: Settings) -> None:
    """Check that every backend a run needs builds, and create the GPU limit when needed.

    Raises ``ConfigurationError`` (one line) for settings that cannot work.
    """
    registry.build_run_backends(settings)
    if holds_gpu(settings):
        from prefect.utilities.asyncutils import run_coro_as_sync

        run_coro_as_sync(ensure_gpu_limit(settings.gpu_slots))


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.deploy",
        description="Serve the on-demand and scheduled flyer deployments until stopped.",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="flow runs at once (default: no limit)"
    )
    add_verbose_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the deployments until Ctrl-C or SIGTERM; return the exit code (0 when stopped)."""
    args = build_parser().parse_args(argv)
    return run_command(
        lambda: _main(args),
        verbose=args.verbose,
        interrupted=None,  # Ctrl-C or SIGTERM is how serving is meant to end
        interrupted_exit=EXIT_OK,
    )


def _main(args: argparse.Namespace) -> int:
    from prefect import serve

    settings = load_settings()
    prepare(settings)
    deployments = build_deployments(settings)
    # The runner stops polling on Ctrl-C or SIGTERM, lets its runs finish and returns.
    serve(*deployments, limit=args.limit)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
