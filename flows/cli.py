"""What every ``python -m flows.*`` command shares: exit codes, one-line errors, ``--verbose``,
Ctrl-C and SIGTERM.

A command parses its arguments and hands its body to ``run_command``, which

- turns SIGTERM into the same ``KeyboardInterrupt`` as Ctrl-C, so every ``finally``
  runs (a Dask cluster is shut down, nothing half-written is left) and the command
  exits 130 (or what the command says an interrupt means: 0 for ``flows.servers``);
- keeps Prefect's console lines and tracebacks off the screen unless ``--verbose``
  (the run's logs still reach the Prefect server);
- prints a ``HyperlocalError`` as one line ``label: message`` and exits with its
  ``exit_code`` (2: something to fix in settings, a brief or a model; 1: a run that
  failed), invalid flow parameters as one line with exit 2, and any other exception
  (a bug) as one ``internal error`` line with exit 1, or its traceback with
  ``--verbose``.

Prefect is never imported here: ``flows.models`` lists models without paying for it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.markup import escape

from hyperlocal.errors import HyperlocalError, first_line
from hyperlocal.layout.formats import FORMATS
from hyperlocal.settings import PROFILES

#: Exit codes, the same for every command.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIGURATION = 2
EXIT_INTERRUPTED = 130

#: What an interrupted flyer run or batch says: publishing is atomic, so nothing is half-written.
NOTHING_HALF_WRITTEN = "interrupted: nothing half-written was left in the output folder"


def add_verbose_flag(parser: argparse.ArgumentParser, prefect: bool = True) -> None:
    """Add ``--verbose`` to a command's parser (Prefect's log lines and tracebacks)."""
    shown = "Prefect's log lines and tracebacks" if prefect else "tracebacks"
    parser.add_argument("--verbose", action="store_true", help=f"show {shown}")


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """Return an argparse type for a whole number from ``low`` to ``high``.

    The returned function raises ``argparse.ArgumentTypeError`` with one line.
    """

    def parse(text: str) -> int:
        try:
            count = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= count <= high:
            raise argparse.ArgumentTypeError(f"{count} is not between {low} and {high}")
        return count

    return parse


def add_run_options(parser: argparse.ArgumentParser, variants_help: str) -> None:
    """Add the options every flyer-making command takes: profile, variants, formats, fresh."""
    parser.add_argument("--profile", choices=sorted(PROFILES), help="bundle of tested settings")
    parser.add_argument("--variants", type=whole_number(1, 8), help=variants_help)
    parser.add_argument(
        "--format",
        dest="formats",
        action="append",
        choices=sorted(FORMATS),
        help="a format to make (repeat for several); default: the profile's",
    )
    parser.add_argument("--fresh", action="store_true", help="ignore the cache and recompute")


def add_server_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--server``: which Prefect server a command runs its flows on."""
    parser.add_argument(
        "--server",
        choices=("auto", "start", "temporary"),
        help="the Prefect server to run on when PREFECT_API_URL is unset: auto (default): "
        "one running at Prefect's local address, else a temporary one; start: start one in "
        "the background if none runs (later commands reuse it); temporary: always a "
        "temporary one (HYPERLOCAL_PREFECT_SERVER sets the default)",
    )


def output_console() -> Console:
    """Return the console for a command's normal output (stdout)."""
    return Console(highlight=False, soft_wrap=True)


def error_console() -> Console:
    """Return the console for warnings and errors (stderr)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while inside: cleanup runs and nothing half-written stays.

    Python's default for SIGTERM ends the process at once, skipping every ``finally``.
    Outside the main thread (signals can only be handled there) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def quiet_prefect_console(verbose: bool) -> None:
    """Keep Prefect's console lines (and tracebacks) off the screen unless ``verbose``.

    Only the console handlers are raised: the run's logs still reach the Prefect
    server and its UI in full.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if verbose:
        return
    from prefect.logging.handlers import PrefectConsoleHandler

    # Prefect attaches its console handler to the root logger (and uvicorn's, for
    # the temporary server) when it configures logging on import.
    for name in ("", "uvicorn", "fastapi"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.CRITICAL + 1)


def describe_failure(exc: BaseException) -> str:
    """Return an exception as the one line a user sees: ``label: message`` for our faults,
    the type and the first line of the message for anything else."""
    if isinstance(exc, HyperlocalError):
        return f"{exc.label}: {exc}"
    first = first_line(exc, default="")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _parameter_problems(exc: BaseException) -> str | None:
    """The problems of Prefect's ``ParameterTypeError`` (invalid flow run options), else None."""
    if "prefect" not in sys.modules:  # nothing Prefect raised, then
        return None
    from prefect.exceptions import ParameterTypeError

    if not isinstance(exc, ParameterTypeError):
        return None
    problems = "; ".join(line.strip(" -") for line in str(exc).splitlines()[1:])
    return problems or str(exc)


def run_command(
    body: Callable[[], int],
    *,
    verbose: bool,
    prefect: bool = True,
    interrupted: str | None = NOTHING_HALF_WRITTEN,
    interrupted_exit: int = EXIT_INTERRUPTED,
    errors: Console | None = None,
) -> int:
    """Run a command's ``body`` and return its exit code; errors are one line, never a traceback.

    ``prefect`` quiets Prefect's console handlers (imports Prefect); ``interrupted``
    is printed on Ctrl-C or SIGTERM (None: nothing) and ``interrupted_exit`` returned.
    With ``verbose`` an unexpected exception propagates with its traceback.
    """
    errors = errors or error_console()
    with sigterm_interrupts():
        try:
            if prefect:
                quiet_prefect_console(verbose)
            return body()
        except KeyboardInterrupt:
            if interrupted:
                errors.print(interrupted)
            return interrupted_exit
        except HyperlocalError as exc:
            errors.print(f"[red]{exc.label}[/]: {escape(str(exc))}")
            return exc.exit_code
        except Exception as exc:
            problems = _parameter_problems(exc)
            if problems is not None:
                errors.print(f"[red]invalid run options[/]: {escape(problems)}")
                return EXIT_CONFIGURATION
            if verbose:
                raise
            # A bug, not a user's mistake: one line here, the traceback with --verbose.
            errors.print(
                f"[red]internal error[/]: {escape(describe_failure(exc))} "
                "(run again with --verbose for the traceback, and please report it)"
            )
            return EXIT_FAILED
