"""The models the settings name, on this machine: ``python -m flows.models``.

python -m flows.models list                # every model, per role: where, present or missing, size
python -m flows.models pull                # fetch what is missing (Hugging Face, or a URL)
python -m flows.models verify --role image # check files against their recorded sha256

Only roles served in process need their models here (mlx text and vision,
diffusers images); a model behind a server is listed as ``served``. Nothing is
fetched during a flyer run unless ``HYPERLOCAL_MODELS__ALLOW_PULL=true``.

Exit codes: 0 done; 1 a download failed, a model is still missing, or a file
failed its check; 2 bad settings (one line, never a traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from backends.model_needs import ROLES, Role, model_entries, pull_missing
from flows.cli import EXIT_FAILED, EXIT_OK, add_verbose_flag, error_console, run_command
from hyperlocal import modelstore
from hyperlocal.modelstore import ModelEntry, human_bytes
from hyperlocal.modelstore import verify as model_verify
from hyperlocal.modelstore.progress import LineProgress, TransferProgress
from hyperlocal.settings import Settings, load_settings


class RichTransferProgress:
    """A rich progress bar for one download: bytes, speed and time left, on stderr."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task: int | None = None

    def start(self, name: str, total: int | None, completed: int) -> None:
        """Show a bar for ``name``, already ``completed`` bytes along."""
        self.finish()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(escape(name), total=total, completed=completed)

    def advance(self, count: int) -> None:
        """Move the bar on by ``count`` bytes."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, count)  # type: ignore[arg-type]

    def finish(self) -> None:
        """Stop the bar (left on screen)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def transfer_progress(console: Console, errors: Console) -> TransferProgress:
    """Return a progress bar on stderr when it is a terminal, else occasional plain lines.

    The plain lines go to stdout with the other news, so stderr holds only errors.
    """
    if errors.is_terminal:
        return RichTransferProgress(errors)
    return LineProgress(lambda line: console.print(escape(line)))


def _state(entry: ModelEntry) -> str:
    if entry.kind == "served":
        return "[cyan]served[/]"
    if entry.present:
        return "[green]present[/]"
    if entry.partial_bytes:
        of = f" of {human_bytes(entry.partial_total)}" if entry.partial_total else ""
        partial = f" (partial: {human_bytes(entry.partial_bytes)}{of})"
    else:
        partial = ""
    fix = f": {modelstore.PULL_COMMAND}" if entry.pullable else ": no such file or folder"
    return f"[red]missing[/]{escape(partial + fix)}"


def _size(entry: ModelEntry) -> str:
    return human_bytes(entry.size_bytes) if entry.size_bytes is not None else "-"


def print_list(console: Console, entries: Sequence[ModelEntry]) -> None:
    """Print the entries as a table: role, reference, kind, where, state, size."""
    if not entries:
        console.print(
            "No model to hold here: every role is builtin or served (see HYPERLOCAL_*__KIND)."
        )
        return
    table = Table(show_lines=False, highlight=False)
    for name in ("role", "reference", "kind", "where", "state", "size"):
        table.add_column(name, overflow="fold", no_wrap=name in ("role", "kind", "size"))
    for entry in entries:
        role = entry.role if entry.what == "model" else f"{entry.role} {entry.what}"
        reference = entry.shown + (f" @ {entry.revision}" if entry.revision else "")
        table.add_row(
            role,
            escape(reference),
            entry.kind,
            escape(entry.where),
            _state(entry),
            _size(entry),
        )
    console.print(table)


def do_pull(
    settings: Settings, entries: list[ModelEntry], console: Console, errors: Console
) -> int:
    """Fetch what is missing; print what was fetched, skipped or failed; return the exit code."""
    outcome = pull_missing(
        settings,
        entries,
        progress=lambda entry: transfer_progress(console, errors),
        say=lambda line: console.print(escape(line)),
    )
    for entry, why in outcome.skipped:
        console.print(f"skipped {entry.role} {entry.what} {escape(entry.shown)}: {escape(why)}")
    for entry in outcome.fetched:
        console.print(
            f"[green]fetched[/] {entry.role} {entry.what} {escape(entry.shown)} -> "
            f"{escape(entry.where)} ({human_bytes(entry.size_bytes)})"
        )
    for _entry, why in outcome.unfetchable:
        errors.print(f"[red]missing[/]: {escape(why)}")
    for _entry, why in outcome.failed:
        errors.print(f"[red]download failed[/]: {escape(why)}")
    return EXIT_FAILED if outcome.failed or outcome.unfetchable else 0


def do_verify(entries: list[ModelEntry], console: Console, errors: Console) -> int:
    """Check every entry's files; print one line per entry and per bad file; return the code."""
    bad = 0
    for entry in entries:
        if entry.kind == "served":
            continue
        checks = model_verify.verify(entry)
        failed = [c for c in checks if c.bad]
        matched = sum(c.status == "ok" for c in checks)
        unrecorded = [c for c in checks if c.status == "no record"]
        label = f"{entry.role} {entry.what} {escape(entry.shown)}"
        if failed:
            bad += len(failed)
            for check in failed:
                errors.print(
                    f"[red]bad[/]: {label}: {escape(check.path)}: {check.status}: "
                    f"{escape(check.detail)}"
                )
        elif matched:
            note = f" ({len(unrecorded)} without a record)" if unrecorded else ""
            console.print(f"[green]ok[/] {label}: {matched} file(s) match{note}")
        else:
            detail = unrecorded[0].detail if unrecorded else "nothing to check"
            console.print(f"[yellow]unchecked[/] {label}: {escape(detail)}")
    return EXIT_FAILED if bad else 0


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.models",
        description="List, fetch and check the models the settings name.",
    )
    parser.add_argument(
        "command",
        choices=("list", "pull", "verify"),
        help="list: where each model is; pull: fetch what is missing; verify: check sha256",
    )
    parser.add_argument(
        "--role", choices=ROLES, action="append", help="only this role (repeat for several)"
    )
    add_verbose_flag(parser, prefect=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code. Errors print one line, never a traceback."""
    args = build_parser().parse_args(argv)
    return run_command(
        lambda: _main(args),
        verbose=args.verbose,
        prefect=False,  # listing models need not pay a second for importing Prefect
        interrupted="interrupted: a partial download is kept and the next pull resumes it",
    )


def _main(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=2000)  # whole paths in pipes and logs
    errors = error_console()
    roles: tuple[Role, ...] = tuple(args.role) if args.role else ROLES
    settings = load_settings()
    entries = model_entries(settings, roles)
    if args.command == "list":
        print_list(console, entries)
        return EXIT_OK
    if args.command == "pull":
        return do_pull(settings, entries, console, errors)
    return do_verify(entries, console, errors)


if __name__ == "__main__":
    sys.exit(main())
