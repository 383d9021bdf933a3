"""The flyer flow for one brief, and its command line: ``python -m flows.flyer``.

python -m flows.flyer                          # the example brief, builtin backends
python -m flows.flyer --brief my.toml --profile quality --variants 3
python -m flows.flyer --format square --fresh  # ignore the cache
python -m flows.flyer --check                  # each backend's health, then exit
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from prefect import Flow, flow
from prefect.context import FlowRunContext
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic import Field
from rich.console import Console
from rich.markup import escape

from backends import registry
from flows.cli import (
    EXIT_FAILED,
    EXIT_OK,
    add_run_options,
    add_server_option,
    add_verbose_flag,
    output_console,
    run_command,
)
from flows.prefect_api import ServerChoice, prefect_api
from flows.progress import RichProgress
from flows.run import FlyerRun
from flows.runners import ensure_gpu_limit, holds_gpu, task_runner_for
from flows.work_summary import work_lines
from hyperlocal.briefs.assets import resolve_asset
from hyperlocal.briefs.loading import load_brief, validate_brief
from hyperlocal.errors import AssetError
from hyperlocal.layout.formats import FormatName
from hyperlocal.models import Brief
from hyperlocal.resources import example_brief
from hyperlocal.settings import ProfileName, Settings, load_settings
from hyperlocal.text import slugify
from tasks.artifacts import artifact_key, expected_steps, publish_run_artifacts, tracked_progress
from tasks.progress import displayed, progress_listener
from tasks.publishing import PublishedRun

#: Folders this process's own code vouches for besides the settings' asset folders: the
#: command line's brief folder, a batch's brief files. A context variable, never a flow
#: parameter: a form or an API call can set every parameter, so none may widen the folders.
_VOUCHED_ASSET_DIRS: ContextVar[tuple[Path, ...]] = ContextVar("vouched_asset_dirs", default=())


@contextmanager
def assets_allowed_from(*folders: Path) -> Iterator[None]:
    """Let the flyer runs started inside this block read assets from ``folders`` too.

    For a caller that read the brief from a file itself (the command line, a batch):
    a logo next to the brief file works wherever that file is. A run from the UI or
    the API has no such caller, so it reads assets only from the allowed folders of
    the machine it runs on (``HYPERLOCAL_ASSET_DIRS``). Raises nothing.
    """
    token = _VOUCHED_ASSET_DIRS.set((*_VOUCHED_ASSET_DIRS.get(), *folders))
    try:
        yield
    finally:
        _VOUCHED_ASSET_DIRS.reset(token)


def allowed_asset_dirs(settings: Settings) -> list[Path]:
    """Return the folders a run in this process may read assets from: the settings'
    and those the calling code vouched for (``assets_allowed_from``).

    A module-level function, not inline in the flow's body: on Dask and for model
    workers Prefect pickles the flow's function by value with the globals it names,
    and a context variable cannot be pickled.
    """
    return [*settings.asset_dirs, *_VOUCHED_ASSET_DIRS.get()]


def flyer_run_name() -> str:
    """Return the flyer run's name from its brief: ``rosie-s-bakery-sourdough-for-beginners``.

    Prefect calls it (``flow_run_name``) with the run's validated parameters in its
    context, instead of naming the run at random. Raises nothing: without a brief it
    is ``flyer``.
    """
    context = FlowRunContext.get()
    brief = context.parameters.get("brief") if context is not None else None
    if not isinstance(brief, Brief):
        return "flyer"
    return slugify(f"{brief.business} {brief.event}", max_length=80)


@flow(name="flyer", validate_parameters=True, flow_run_name=flyer_run_name)
def flyer(
    brief: Brief,
    profile: ProfileName | None = None,
    variants: Annotated[int | None, Field(ge=1, le=8)] = None,
    formats: list[FormatName] | None = None,
    fresh: bool = False,
    print_ready: bool | None = None,
    crop_marks: bool | None = None,
    assets_from: str | None = None,
) -> PublishedRun:
    """Make flyers for one brief: copy, art direction, pictures, QC, layout, run folder.

    Raises ``ConfigurationError`` (bad settings, brief assets, fonts, backends)
    before any model work, or the first step fault left after its retries; an
    ``AssetError`` names a logo or an ``assets_from`` outside the allowed folders.

    Args:
        brief: Who, what, when and where: the facts printed on the flyer as given.
        profile: Bundle of tested settings: preview (fast, 2 variants), balanced, or
            quality (4 variants, 300 ppi). Empty: the profile of the machine running it.
        variants: Variants to make (1-8), each with its own picture and layout design.
            Empty: the profile's number.
        formats: Formats to make: letter, a4, half_letter (PDF and PNG), square,
            portrait, story (PNG). Empty: the settings' formats.
        fresh: Ignore cached results and compute every step again.
        print_ready: Print-ready PDFs: the picture bleeds 1/8 in (3 mm on ISO sizes)
            past the trim. Empty: the settings' choice.
        crop_marks: Crop marks outside the bleed (implies print-ready). Empty: the
            settings' choice.
        assets_from: Folder the brief's relative logo path is read from. It must lie
            inside the allowed asset folders (HYPERLOCAL_ASSET_DIRS) of the machine
            running the flow. Empty: each allowed folder in turn.
    """
    settings = load_settings(
        profile=profile,
        variants=variants,
        formats=formats,
        layout__print=print_ready,
        layout__crop_marks=crop_marks,
    )
    allowed = allowed_asset_dirs(settings)
    brief = _checked_assets(brief, Path(assets_from) if assets_from else None, allowed)
    return make_flyers(brief, settings, fresh=fresh)


def make_flyers(brief: Brief, settings: Settings, fresh: bool = False) -> PublishedRun:
    """Run one brief inside the current flow run, with its progress and result artifacts.

    The flow's body calls this module-level function: on Dask, Prefect ships the
    flow's function to the workers by value with the globals it names. The command
    line's display is not in any context that travels (``tasks.progress.displayed``).
    Raises what ``FlyerRun`` raises.
    """
    # Progress artifact first, so the UI shows the run from its start; the CLI's
    # listener keeps getting every step event. Artifacts never fail the run.
    total = expected_steps(
        settings.variants or 1, len(settings.formats or []), bool(settings.qc.enabled)
    )
    key = artifact_key(brief, "progress")
    with tracked_progress(progress_listener, total, key, f"Flyers for {brief.business}"):
        if settings.task_runner == "dask" and holds_gpu(settings):
            run_coro_as_sync(ensure_gpu_limit(settings.gpu_slots))
        outcome = FlyerRun(brief, settings, fresh=fresh).execute()
        publish_run_artifacts(outcome)
    return outcome


def flyer_flow(settings: Settings) -> Flow[..., PublishedRun]:
    """Return the ``flyer`` flow with the task runner the settings ask for.

    Raises ``ConfigurationError`` when that runner is not installed.
    """
    runner = task_runner_for(settings)
    return flyer if runner is None else flyer.with_options(task_runner=runner)


def _checked_assets(brief: Brief, base_dir: Path | None, allowed: Sequence[Path]) -> Brief:
    """Return ``brief`` with its logo resolved inside the ``allowed`` folders.

    ``base_dir`` (the flow's ``assets_from``) only says where a relative logo path
    is read from: it must itself lie inside an allowed folder, so no parameter can
    widen what a run may read. Raises ``AssetError`` (one line) otherwise, or for
    a logo outside the allowed folders or missing.
    """
    logo = brief.brand.logo
    if logo is None:
        return brief
    if base_dir is not None and not inside_any(base_dir, allowed):
        shown = ", ".join(str(folder.resolve()) for folder in allowed) or "(none)"
        raise AssetError(
            f"assets_from: {str(base_dir)[:200]} is outside the allowed asset folders "
            f"({shown}); add it to HYPERLOCAL_ASSET_DIRS on the machine that runs the flow"
        )
    try:
        resolved = resolve_asset(logo, base_dir, allowed)
    except AssetError as exc:
        raise AssetError(f"brand.logo: {exc}") from None
    return brief.model_copy(update={"brand": brief.brand.model_copy(update={"logo": resolved})})


def inside_any(folder: Path, allowed: Sequence[Path]) -> bool:
    """Whether ``folder`` (a file or a folder, links followed) lies in one of ``allowed``."""
    try:
        real = folder.resolve()
    except (OSError, ValueError):  # a NUL byte, a loop of links: not a usable folder
        return False
    return any(real.is_relative_to(root.resolve()) for root in allowed)


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.flyer",
        description="Make print-ready and social flyers from a brief.",
    )
    parser.add_argument(
        "--brief",
        type=Path,
        help="brief file (TOML, YAML or JSON); default: the example bakery brief, "
        "or only the brief fields below when --business is given",
    )
    add_run_options(parser, variants_help="how many variants (1-8)")
    parser.add_argument(
        "--print",
        dest="print_ready",
        action="store_true",
        default=None,
        help="print-ready PDFs: the picture bleeds 1/8 in (3 mm) past the trim",
    )
    parser.add_argument(
        "--crop-marks",
        action="store_true",
        default=None,
        help="add crop marks outside the bleed (implies --print)",
    )
    parser.add_argument("--check", action="store_true", help="show each backend's health and exit")
    add_server_option(parser)
    add_verbose_flag(parser)
    fields = parser.add_argument_group("brief fields (override the brief file)")
    for name in ("business", "event", "details", "date", "time", "place", "price", "audience"):
        fields.add_argument(f"--{name}", help=Brief.model_fields[name].description)
    fields.add_argument("--tone", help=Brief.model_fields["tone"].description)
    fields.add_argument("--url", help=Brief.model_fields["url"].description)
    fields.add_argument("--language", help=Brief.model_fields["language"].description)
    fields.add_argument(
        "--cta", dest="call_to_action", help=Brief.model_fields["call_to_action"].description
    )
    return parser


_BRIEF_FLAGS = (
    "business",
    "event",
    "details",
    "date",
    "time",
    "place",
    "price",
    "audience",
    "tone",
    "url",
    "language",
    "call_to_action",
)


def check_backends(console: Console) -> int:
    """Print the health of each backend a run would use; return the exit code (0: all healthy).

    Raises ``ConfigurationError`` when a backend cannot be built.
    """
    settings = load_settings()
    healthy = True
    for role, backend in registry.build_run_backends(settings).items():
        resolved = registry.resolve(role, settings)
        started = time.perf_counter()
        health = backend.health()
        elapsed = time.perf_counter() - started
        latency = health.latency_s if health.latency_s is not None else elapsed
        healthy &= health.ok
        state = "[green]healthy[/]" if health.ok else "[red]unhealthy[/]"
        console.print(
            f"{role:<7}{resolved.kind:<10}{state}  {escape(health.detail)} "
            f"({latency * 1000:.0f} ms; {escape(resolved.reason)})"
        )
        if health.models:
            console.print(f"{'':17}models: {escape(', '.join(health.models))}")
    if "vision" not in registry.run_roles(settings):
        console.print(f"{'vision':<7}{'off':<10}pictures are not checked (HYPERLOCAL_QC__ENABLED)")
    return EXIT_OK if healthy else EXIT_FAILED


#: How the summary marks each kind of model-work line.
WORK_PREFIXES = {
    "info": "[dim]model[/]",
    "note": "[yellow]note[/]",
    "warning": "[yellow]warning[/]",
}


def report(console: Console, outcome: PublishedRun, seconds: float) -> None:
    """Print what the run made, what came from the cache, and where the files are."""
    manifest = outcome.manifest
    calls = sum(manifest.model_calls.values())
    flagged = [
        f"variant {v.variant} {f.format}"
        for v in manifest.variants
        for f in v.formats
        if f.qc_passed is False
    ]
    dropped = sorted(
        {
            f"variant {v.variant} {f.format}"
            for v in manifest.variants
            for f in v.formats
            if f.prompt.dropped
        }
    )
    done = f"[green]Done in {seconds:.1f} s[/] (steps {manifest.seconds:.1f} s)"
    if calls == 0:
        console.print(
            f"{done}: every step came from the cache "
            f"({manifest.cached_steps} steps), no model work was done."
        )
    else:
        per_role = ", ".join(f"{role} {n}" for role, n in manifest.model_calls.items())
        console.print(
            f"{done}: {manifest.computed_steps} steps computed "
            f"({calls} model calls: {per_role}), {manifest.cached_steps} from the cache."
        )
    on_workers = sum(record.on_worker for record in manifest.steps)
    if on_workers:
        console.print(f"[dim]model workers[/]: {on_workers} steps ran on model workers")
    if manifest.damaged_cache:
        count = len(manifest.damaged_cache)
        what = "1 cached result was" if count == 1 else f"{count} cached results were"
        console.print(
            f"[yellow]warning[/]: {what} damaged (cut short or corrupted) and computed again"
        )
    for kind, line in work_lines(manifest):
        console.print(f"{WORK_PREFIXES[kind]}: {escape(line)}")
    for name in flagged:
        console.print(f"[yellow]warning[/]: {name}: every picture failed QC; the best one is used")
    for name in dropped:
        console.print(f"[yellow]note[/]: {name}: image prompt shortened to fit CLIP (see manifest)")
    for variant in manifest.variants:
        for reason in variant.text_fallbacks:
            console.print(
                f"[yellow]warning[/]: variant {variant.variant}: the builtin copywriter took "
                f"over after {escape(reason)}"
            )
        for fmt in variant.formats:
            for attempt in fmt.attempts:
                if attempt.image_error:
                    console.print(
                        f"[yellow]warning[/]: variant {variant.variant} {fmt.format}: picture "
                        f"{attempt.attempt} was unusable and was painted again: "
                        f"{escape(attempt.image_error)}"
                    )
                if attempt.qc_error:
                    console.print(
                        f"[yellow]warning[/]: variant {variant.variant} {fmt.format}: picture "
                        f"shipped unchecked, no verdict from the vision backend: "
                        f"{escape(attempt.qc_error)}"
                    )
            for fallback in fmt.font_fallbacks:
                console.print(
                    f"[yellow]note[/]: variant {variant.variant} {fmt.format}: {escape(fallback)}"
                )
            if fmt.cut:
                console.print(
                    f"[yellow]note[/]: variant {variant.variant} {fmt.format}: left out to fit "
                    f"the panel: {escape('; '.join(fmt.cut))}"
                )
    console.print(f"Flyers in [bold]{escape(str(outcome.folder.resolve()))}[/]:")
    for path in outcome.files:
        console.print(f"  {escape(str(path.resolve()))}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code. Errors print one line, never a traceback."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: _main(args), verbose=args.verbose)


def _main(args: argparse.Namespace) -> int:
    console = output_console()
    if args.check:
        return check_backends(console)
    settings = load_settings()
    overrides: dict[str, Any] = {name: getattr(args, name) for name in _BRIEF_FLAGS}
    if args.brief is None and args.business:
        # A brief from flags alone: nothing of the example leaks into it.
        brief_dir = Path.cwd()
        flags = {name: value for name, value in overrides.items() if value is not None}
        brief = validate_brief(flags, "command line", brief_dir, settings.asset_dirs)
    else:
        brief_file = args.brief or example_brief()
        brief_dir = brief_file.parent
        brief = load_brief(brief_file, overrides, settings.asset_dirs)
    started = time.perf_counter()
    choice: ServerChoice = args.server or settings.prefect_server
    with (
        prefect_api(choice, say=lambda line: console.print(line, markup=False)),
        RichProgress(console) as progress,
        displayed(progress.on_event),
        # The brief's own folder is vouched for here, not by a parameter (see
        # assets_allowed_from): its logo may sit next to it wherever it is.
        assets_allowed_from(brief_dir.resolve()),
    ):
        outcome = flyer_flow(settings)(
            brief=brief,
            profile=args.profile,
            variants=args.variants,
            formats=args.formats,
            print_ready=args.print_ready,
            crop_marks=args.crop_marks,
            fresh=args.fresh,
            assets_from=str(brief_dir.resolve()),
        )
    report(console, outcome, time.perf_counter() - started)
    return EXIT_OK


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy of it: on Dask, Prefect sends
    # the flow along with every task, and a flow defined in __main__ would be pickled
    # by value with every global it names (a context variable cannot be pickled).
    from flows.flyer import main as importable_main

    sys.exit(importable_main())
