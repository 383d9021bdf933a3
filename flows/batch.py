"""Flyers for a whole set of briefs: the ``flyer-batch`` flow and ``python -m flows.batch``.

python -m flows.batch briefs/                     # every brief file in the folder
python -m flows.batch briefs.csv --strict         # one brief per row; any bad row stops it
python -m flows.batch briefs.json --format square --variants 1 --max-parallel 2

Every brief is validated before any runs. Each good brief runs the ``flyer``
flow as a subflow (so its steps are cached and visible under the batch in the
UI), at most ``max_parallel`` at once; one brief failing never stops the others.
The batch writes ``batch_summary.json`` under ``<output_dir>/batches/`` and
publishes the same table as a Prefect artifact (key ``flyer-batch-summary``).
A re-run of the same set is served from the cache.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run
from pydantic import BaseModel, Field
from rich.console import Console
from rich.markup import escape

from backends import registry
from backends.model_needs import ensure_models
from flows.cli import (
    EXIT_CONFIGURATION,
    EXIT_FAILED,
    EXIT_OK,
    add_run_options,
    add_server_option,
    add_verbose_flag,
    describe_failure,
    error_console,
    output_console,
    run_command,
    whole_number,
)
from flows.flyer import allowed_asset_dirs, assets_allowed_from, flyer_flow, inside_any
from flows.prefect_api import ServerChoice, prefect_api
from flows.runners import task_runner_for
from hyperlocal.briefs.sets import BriefItem, BriefSet, load_brief_set
from hyperlocal.errors import BriefError
from hyperlocal.files import write_atomic
from hyperlocal.layout.formats import FormatName
from hyperlocal.settings import ProfileName, Settings, load_settings
from hyperlocal.text import slugify

#: Key of the summary table artifact; every batch adds a version under it.
ARTIFACT_KEY = "flyer-batch-summary"
SUMMARY_FILE = "batch_summary.json"


class BriefResult(BaseModel):
    """What became of one brief of the batch."""

    source: str
    business: str | None = None
    status: Literal["ok", "failed", "invalid"]
    folder: Path | None = None
    error: str | None = None
    model_calls: int = 0
    cached_steps: int = 0
    computed_steps: int = 0
    seconds: float = 0.0


class BatchSummary(BaseModel):
    """The batch's outcome: one result per brief of the set, good or bad, in set order."""

    name: str
    source: Path
    folder: Path
    created_at: datetime
    #: The batch's Prefect flow run (its artifact and subflows hang off it).
    flow_run_id: str | None = None
    task_runner: str
    #: Task runs Dask executed during the batch, per worker address (empty with threads).
    dask_tasks: dict[str, int] = Field(default_factory=dict)
    results: list[BriefResult]
    seconds: float

    @property
    def ok(self) -> list[BriefResult]:
        """The briefs that made flyers."""
        return [r for r in self.results if r.status == "ok"]

    @property
    def failed(self) -> list[BriefResult]:
        """The valid briefs whose run failed."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def invalid(self) -> list[BriefResult]:
        """The briefs that did not validate (never run)."""
        return [r for r in self.results if r.status == "invalid"]


def _batch_folder(output_dir: Path, source: Path, created: datetime) -> Path:
    """A new folder for this batch's summary: timestamp and the set's name, never reused."""
    parent = output_dir / "batches"
    name = f"{created:%Y%m%d-%H%M%S}-{slugify(source.stem or source.name)}"
    folder = parent / name
    number = 2
    while folder.exists():
        folder = parent / f"{name}-{number}"
        number += 1
    return folder


def _check_backends(settings: Settings) -> None:
    """Build every backend once: a configuration error stops the batch before any brief runs.

    With ``models.allow_pull`` the missing models are fetched first (once, not per brief).
    """
    ensure_models(settings, say=get_run_logger().info)
    registry.build_run_backends(settings)


@contextlib.contextmanager
def _dask_cluster(settings: Settings) -> Iterator[tuple[Settings, Any]]:
    """Yield run settings and a Dask client when the steps run on Dask, else (settings, None).

    Without ``dask_address`` the batch starts one local cluster of ``dask_workers``
    processes and hands its address to every brief's runner: otherwise each
    subflow's ``DaskTaskRunner`` would start (and pay for) a cluster of its own.
    Raises ``ConfigurationError`` when prefect-dask is not installed.
    """
    if settings.task_runner != "dask":
        yield settings, None
        return
    task_runner_for(settings)  # the one clear line when prefect-dask is missing
    from distributed import Client, LocalCluster

    if settings.dask_address:
        with Client(settings.dask_address) as client:
            yield settings, client
        return
    with (
        LocalCluster(
            n_workers=settings.dask_workers,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield settings.with_overrides(dask_address=cluster.scheduler_address), client


def _run_one(
    item: BriefItem,
    settings: Settings,
    profile: ProfileName | None,
    variants: int | None,
    formats: list[FormatName] | None,
    fresh: bool,
) -> BriefResult:
    """Run the ``flyer`` subflow for one brief; a failure becomes its result, never raised."""
    started = time.perf_counter()
    try:
        # The brief file's folder, vouched for by this code (not a flow parameter): a
        # logo next to its brief works wherever the set is. The brief named the logo,
        # and load_brief_set has already kept it inside that folder or the asset folders.
        with assets_allowed_from(item.base_dir):
            outcome = flyer_flow(settings)(
                brief=item.brief,
                profile=profile,
                variants=variants,
                formats=formats,
                fresh=fresh,
            )
    except Exception as exc:  # one brief failing must not stop the others
        return BriefResult(
            source=item.source,
            business=item.brief.business,
            status="failed",
            error=describe_failure(exc),
            seconds=round(time.perf_counter() - started, 3),
        )
    manifest = outcome.manifest
    return BriefResult(
        source=item.source,
        business=item.brief.business,
        status="ok",
        folder=outcome.folder,
        model_calls=sum(manifest.model_calls.values()),
        cached_steps=manifest.cached_steps,
        computed_steps=manifest.computed_steps,
        seconds=round(time.perf_counter() - started, 3),
    )


def _publish_table(summary: BatchSummary) -> None:
    rows = [
        {
            "source": r.source,
            "business": r.business or "",
            "status": r.status,
            "run folder": str(r.folder) if r.folder else (r.error or ""),
            "model calls": r.model_calls,
            "cached steps": r.cached_steps,
            "seconds": r.seconds,
        }
        for r in summary.results
    ]
    create_table_artifact(
        table=rows,
        key=ARTIFACT_KEY,
        description=(
            f"Batch {summary.name}: {len(summary.ok)} made, {len(summary.failed)} failed, "
            f"{len(summary.invalid)} invalid briefs from {summary.source}"
        ),
    )


def check_source(path: Path, settings: Settings) -> None:
    """Raise ``BriefError`` unless a batch run may read briefs from ``path``.

    A run from the UI or the API sets ``source`` itself, and each brief's logo is
    read from next to its file: so ``source`` must lie in the scheduled briefs
    folder or an asset folder of this machine, or in a folder the calling code
    vouched for (``assets_allowed_from``: the command line's own path).
    """
    roots = [Path(settings.schedule.briefs), *allowed_asset_dirs(settings)]
    if not inside_any(path, roots):
        shown = ", ".join(str(root.resolve()) for root in roots)
        raise BriefError(
            f"source: {path} is outside the folders a batch run may read ({shown}): put "
            "the briefs in HYPERLOCAL_SCHEDULE__BRIEFS or an asset folder, or run "
            "python -m flows.batch on that machine"
        )


def batch_run_name() -> str:
    """Return the batch run's name from its source: ``batch-briefs`` for a ``briefs`` folder.

    Prefect calls it (``flow_run_name``) instead of naming the run at random.
    Raises nothing.
    """
    source = flow_run.parameters.get("source")
    name = Path(str(source)).stem if source else ""
    return f"batch-{slugify(name)}" if name else "batch"


@flow(name="flyer-batch", validate_parameters=True, flow_run_name=batch_run_name)
def batch(
    source: str,
    profile: ProfileName | None = None,
    variants: Annotated[int | None, Field(ge=1, le=8)] = None,
    formats: list[FormatName] | None = None,
    strict: bool = False,
    max_parallel: Annotated[int | None, Field(ge=1, le=64)] = None,
    fresh: bool = False,
) -> BatchSummary:
    """Make flyers for every valid brief of a set; write and publish the batch summary.

    Raises ``BriefError`` when the set cannot be read, or (``strict``) when any
    brief is invalid, naming each; ``ConfigurationError`` for bad settings or
    backends. Both come before any brief runs. A brief whose run fails is
    recorded as failed in the summary, not raised.

    Args:
        source: Folder of brief files, a CSV (one brief per row) or a JSON list of
            briefs, on the machine running the flow.
        profile: Bundle of tested settings: preview, balanced or quality. Empty: the
            profile of the machine running it.
        variants: Variants per brief (1-8). Empty: the profile's number.
        formats: Formats to make: letter, a4, half_letter, square, portrait, story.
            Empty: the settings' formats.
        strict: Run nothing when any brief of the set is invalid.
        max_parallel: Briefs worked on at once (1-64). Empty: the settings' number.
        fresh: Ignore cached results and compute every step again.
    """
    logger = get_run_logger()
    started = time.perf_counter()
    created = datetime.now(UTC)
    settings = load_settings(profile=profile, variants=variants, formats=formats)
    path = Path(source)
    check_source(path, settings)
    brief_set: BriefSet = load_brief_set(path, settings.asset_dirs)
    for problem in brief_set.problems:
        logger.error("invalid brief: %s", problem.message)
    if strict and brief_set.problems:
        raise BriefError(
            f"{len(brief_set.problems)} of {brief_set.total} briefs are invalid "
            f"({'; '.join(p.source for p in brief_set.problems)}); nothing was run (strict)"
        )
    _check_backends(settings)
    workers = max(1, min(max_parallel or settings.max_parallel, len(brief_set.items) or 1))
    logger.info("%d valid briefs of %d; %d at once", len(brief_set.items), brief_set.total, workers)
    dask_tasks: dict[str, int] = {}
    with _dask_cluster(settings) as (run_settings, client):
        task_runner = f"dask {run_settings.dask_address}" if client is not None else "threads"
        stream = contextlib.nullcontext(None)
        if client is not None:
            from distributed import get_task_stream

            # Records every task the scheduler ran meanwhile, with the worker that ran it.
            stream = get_task_stream(client)
        with (
            stream as recorded,
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="brief") as pool,
        ):
            # copy_context: each thread sees the batch's flow run, so the briefs are subflows.
            futures = [
                pool.submit(
                    contextvars.copy_context().run,
                    _run_one,
                    item,
                    run_settings,
                    profile,
                    variants,
                    formats,
                    fresh,
                )
                for item in brief_set.items
            ]
            ran = [f.result() for f in futures]
        if recorded is not None:
            for record in recorded.data:
                worker = str(record.get("worker", "unknown"))
                dask_tasks[worker] = dask_tasks.get(worker, 0) + 1
    results = ran + [
        BriefResult(source=p.source, status="invalid", error=p.message) for p in brief_set.problems
    ]
    for result in ran:
        if result.status == "failed":
            logger.error("%s: failed: %s", result.source, result.error)
    folder = _batch_folder(settings.output_dir, path, created)
    summary = BatchSummary(
        name=folder.name,
        source=path.resolve(),
        folder=folder,
        created_at=created,
        flow_run_id=str(flow_run.id) if flow_run.id else None,
        task_runner=task_runner,
        dask_tasks=dask_tasks,
        results=results,
        seconds=round(time.perf_counter() - started, 3),
    )
    write_atomic(folder / SUMMARY_FILE, summary.model_dump_json(indent=2) + "\n")
    _publish_table(summary)
    logger.info(
        "batch %s: %d made, %d failed, %d invalid",
        summary.name,
        len(summary.ok),
        len(summary.failed),
        len(summary.invalid),
    )
    return summary


def build_parser() -> argparse.ArgumentParser:
    """Return the batch command line's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.batch",
        description="Make flyers for every brief in a folder, a CSV or a JSON list.",
    )
    parser.add_argument(
        "path",
        type=Path,
        help="a folder of brief files (TOML, YAML, JSON), a CSV with one brief per row "
        "(columns: brief fields, brand.colors, brand.logo, ...), or a JSON list of briefs",
    )
    parser.add_argument(
        "--strict", action="store_true", help="run nothing when any brief is invalid"
    )
    add_run_options(parser, variants_help="variants per brief (1-8)")
    parser.add_argument(
        "--max-parallel",
        type=whole_number(1, 64),
        help="briefs worked on at once (default: HYPERLOCAL_MAX_PARALLEL)",
    )
    add_server_option(parser)
    add_verbose_flag(parser)
    return parser


def print_summary(console: Console, summary: BatchSummary) -> None:
    """Print one line per brief that ran (status and run folder, or its error), then totals."""
    for result in summary.results:
        if result.status == "ok":
            cache = (
                "all from the cache"
                if result.model_calls == 0
                else f"{result.model_calls} model calls"
            )
            console.print(
                f"[green]ok[/]      {escape(result.source)}: "
                f"{escape(str(result.folder))} ({cache}, {result.seconds:.1f} s)"
            )
        elif result.status == "failed":
            console.print(f"[red]failed[/]  {escape(result.source)}: {escape(result.error or '')}")
    console.print(
        f"Batch: {len(summary.ok)} made, {len(summary.failed)} failed, "
        f"{len(summary.invalid)} invalid; summary in "
        f"[bold]{escape(str((summary.folder / SUMMARY_FILE).resolve()))}[/]"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the batch command line; return its exit code.

    0: every valid brief made flyers; 1: any failed; 2: settings, an unreadable
    set, no valid brief, or ``--strict`` with an invalid brief. Invalid briefs
    print one line each on stderr; errors never print a traceback.
    """
    args = build_parser().parse_args(argv)
    return run_command(lambda: _main(args), verbose=args.verbose)


def _main(args: argparse.Namespace) -> int:
    errors = error_console()
    settings = load_settings(profile=args.profile)
    # Validate here too: the lines come first, and --strict or a set with no
    # valid brief stops before a Prefect server is even started.
    brief_set = load_brief_set(args.path, settings.asset_dirs)
    for problem in brief_set.problems:
        errors.print(f"[red]invalid brief[/]: {escape(problem.message)}")
    if brief_set.problems and args.strict:
        errors.print(
            f"[red]strict[/]: {len(brief_set.problems)} of {brief_set.total} briefs are "
            "invalid; nothing was run"
        )
        return EXIT_CONFIGURATION
    if not brief_set.items:
        errors.print(f"[red]brief error[/]: {escape(str(args.path))}: no valid briefs to run")
        return EXIT_CONFIGURATION
    console = output_console()
    choice: ServerChoice = args.server or settings.prefect_server
    with (
        prefect_api(choice, say=lambda line: console.print(line, markup=False)),
        # The user named this path on their own machine: the run may read it.
        assets_allowed_from(args.path.resolve()),
    ):
        summary = batch(
            source=str(args.path),
            profile=args.profile,
            variants=args.variants,
            formats=args.formats,
            strict=args.strict,
            max_parallel=args.max_parallel,
            fresh=args.fresh,
        )
    print_summary(console, summary)
    return EXIT_FAILED if summary.failed else EXIT_OK


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy of it: on Dask, Prefect sends
    # the flow along with every task, and a flow defined in __main__ would be pickled
    # by value with every global it names (a context variable cannot be pickled).
    from flows.batch import main as importable_main

    sys.exit(importable_main())
