"""The command line's progress display: one line per variant, updated per step."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from tasks.progress import ProgressEvent

STEP_WORDS = {
    "write_copy": "writing copy",
    "direct_art": "art-directing",
    "fit_prompt": "fitting prompt",
    "generate_image": "painting",
    "check_image": "checking picture",
    "render_flyer": "typesetting",
    "publish": "writing the run folder",
}


class RichProgress:
    """Shows which step each variant is on; safe to call from the variant threads."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._rows: dict[int | None, TaskID] = {}
        self._done: dict[int | None, int] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def on_event(self, event: ProgressEvent) -> None:
        """Update the row of the event's variant."""
        label = "run" if event.variant is None else f"variant {event.variant}"
        words = STEP_WORDS.get(event.step, event.step)
        where = f" {event.format}" if event.format else ""
        attempt = f" (attempt {event.attempt})" if event.attempt and event.attempt > 1 else ""
        with self._lock:
            row = self._rows.get(event.variant)
            if row is None:
                row = self._progress.add_task(label, total=None)
                self._rows[event.variant] = row
                self._done[event.variant] = 0
            if event.state == "finished":
                self._done[event.variant] += 1
                status = "cached" if event.cached else "done"
                text = (
                    f"{label}: {words}{where}{attempt} {status} ({self._done[event.variant]} steps)"
                )
            elif event.state == "tokens":
                # A model's answer growing: a slow model shows it is still writing.
                text = f"{label}: {words}{where}… {event.tokens} tokens"
            else:
                text = f"{label}: {words}{where}{attempt}…"
            self._progress.update(row, description=text)
