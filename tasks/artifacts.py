"""Prefect artifacts of a flyer run: the copy with thumbnails, a table of files, live progress.

Three artifacts per run, keyed on the brief's slug so runs of one brief share
their artifact collections in the UI:

- ``flyer-<slug>`` (markdown): business and event, then per variant its design,
  its copy and a thumbnail of every flyer as a ``data:`` URI (the previews made
  while publishing, or read from the run folder), and the run folder;
- ``flyer-<slug>-files`` (table): one row per variant and format with the QC
  score, attempts, seed and file paths;
- ``flyer-<slug>-progress`` (progress): created when the flow starts, moved on
  as steps finish, 100 when the run and its artifacts are done.

Artifacts are a view of the run, never part of it: each function works only
inside a flow run, and anything that goes wrong (no run context, server
refusing, unreadable picture) is logged as a warning and the run goes on.
"""

from __future__ import annotations

import contextvars
import logging
import string
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from PIL import Image
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import FlowRunContext

from hyperlocal.layout.thumbnails import PREVIEW_HEIGHT, jpeg_data_uri
from hyperlocal.models import Brief, FormatRecord, RunManifest, VariantRecord
from hyperlocal.text import slugify
from tasks.log import step_logger
from tasks.publishing import PublishedRun

#: At most one progress update per this many seconds, besides the first step of each stage.
PROGRESS_INTERVAL_S = 0.5

# Every ASCII punctuation character is backslash-escaped (CommonMark shows it literally):
# no tag (``<``), entity (``&``), emphasis, link, image, heading or table cell can start.
# Prefect's renderer does not decode numeric character references, so those would show.
_ESCAPES: dict[int, str] = {ord(ch): "\\" + ch for ch in string.punctuation}
# A line break would let user text start a new block (a heading, a list, a table row).
_ESCAPES.update({ord("\n"): " ", ord("\r"): " ", ord("\t"): " "})


class StepEvent(Protocol):
    """What the progress tracker reads of a step event (``tasks.progress.ProgressEvent``)."""

    @property
    def variant(self) -> int | None: ...

    @property
    def format(self) -> str | None: ...

    @property
    def step(self) -> str: ...

    @property
    def state(self) -> str: ...


Listener = Callable[[Any], None]


def escape_markdown(text: str) -> str:
    """Return ``text`` safe to place anywhere in a markdown artifact, shown literally.

    Every ASCII punctuation character (``<``, ``>``, ``&``, ``*``, ``_``, ``[``, ``#``,
    backticks, ``|``, ``!`` ...) gets a backslash, which CommonMark turns back into the
    character itself; line breaks become spaces. Never raises.
    """
    return text.translate(_ESCAPES)


def plain_description(text: str) -> str:
    """Return ``text`` fit for an artifact description, which the UI shows as plain text.

    Escapes would show literally there, so nothing is escaped; angle brackets and
    control characters are dropped instead, so no markup survives wherever a
    description is rendered.
    """
    spaced = "".join(" " if ch.isspace() else ch for ch in text)
    kept = "".join(ch for ch in spaced if ch not in "<>" and ch.isprintable())
    return " ".join(kept.split())[:200]


def artifact_key(brief: Brief, suffix: str = "") -> str:
    """Return the artifact key of a brief: ``flyer-<slug>[-suffix]``.

    Only lowercase letters, digits and dashes, as Prefect requires of keys.
    """
    slug = slugify(f"{brief.business} {brief.event}")
    return f"flyer-{slug}" + (f"-{slugify(suffix)}" if suffix else "")


def expected_steps(variants: int, formats: int, qc: bool) -> int:
    """Return how many distinct steps a run takes when every first picture passes.

    Per variant: copy and art direction; per variant and format: prompt fitting,
    picture, QC (when on) and layout; then one publish step.
    """
    per_format = 4 if qc else 3
    return variants * 2 + variants * formats * per_format + 1


def _in_flow_run(what: str) -> bool:
    if FlowRunContext.get() is None:
        logging.getLogger("hyperlocal").warning("%s skipped: not inside a flow run", what)
        return False
    return True


def thumbnail_data_uri(png_path: Path, height: int = PREVIEW_HEIGHT) -> str:
    """Return a JPEG thumbnail ``height`` pixels tall of a picture file as a ``data:`` URI.

    Raises ``OSError`` when the file cannot be read or is not a picture.
    """
    with Image.open(png_path) as picture:
        return jpeg_data_uri(picture, height)


def _copy_lines(record: VariantRecord) -> list[str]:
    copy = record.copy_
    lines = [f"### {escape_markdown(copy.headline)}", ""]
    if copy.subhead:
        lines += [f"*{escape_markdown(copy.subhead)}*", ""]
    facts = [("When", copy.when), ("Where", copy.where), ("Price", copy.price)]
    lines += [f"- **{name}:** {escape_markdown(value)}" for name, value in facts if value]
    lines += [f"- {escape_markdown(point)}" for point in copy.body_points]
    lines += ["", f"**Call to action:** {escape_markdown(copy.call_to_action)}", ""]
    return lines


def _thumbnail_lines(record: VariantRecord, folder: Path, previews: Mapping[str, str]) -> list[str]:
    images: list[str] = []
    for fmt in record.formats:
        label = escape_markdown(f"variant {record.variant} {fmt.format}")
        png = next((name for name in fmt.files if name.endswith(".png")), None)
        if png is None:
            continue
        try:
            uri = previews.get(png) or thumbnail_data_uri(folder / png)
        except OSError as exc:
            step_logger().warning("no thumbnail for %s: %s", png, exc)
            images.append(f"*{label}: thumbnail unavailable*")
            continue
        images.append(f"![{label}]({uri})")
    return [" ".join(images), ""] if images else []


def run_markdown(
    manifest: RunManifest, folder: Path, previews: Mapping[str, str] | None = None
) -> str:
    """Return the markdown of a run: business, event, each variant's copy and thumbnails.

    Thumbnails are the ``previews`` (``data:`` URIs by PNG file name) or, for a flyer
    without one, made from its file in ``folder``. Every text from the brief or a model
    is escaped (``escape_markdown``). A flyer whose PNG cannot be read gets a note
    instead of a thumbnail (logged).
    """
    brief = manifest.brief
    lines = [
        f"# {escape_markdown(brief.business)}",
        "",
        f"**Event:** {escape_markdown(brief.event)}",
        "",
    ]
    for record in manifest.variants:
        designs = ", ".join(dict.fromkeys(fmt.design for fmt in record.formats))
        lines += [f"## Variant {record.variant} · {escape_markdown(designs)}", ""]
        lines += _copy_lines(record)
        lines += _thumbnail_lines(record, folder, previews or {})
    lines += [f"**Run folder:** {escape_markdown(str(folder))}", ""]
    return "\n".join(lines)


def _chosen(fmt: FormatRecord) -> tuple[int | None, float | None]:
    chosen = next((a for a in fmt.attempts if a.attempt == fmt.chosen_attempt), None)
    if chosen is None:
        return None, None
    return chosen.seed, chosen.qc.score if chosen.qc is not None else None


def run_table(manifest: RunManifest, folder: Path) -> list[dict[str, Any]]:
    """Return one row per variant and format: design, QC score, attempts, seed, file paths.

    The QC score and seed are the chosen attempt's (``None`` when QC was off).
    """
    rows: list[dict[str, Any]] = []
    for record in manifest.variants:
        for fmt in record.formats:
            seed, score = _chosen(fmt)
            rows.append(
                {
                    "variant": record.variant,
                    "format": fmt.format,
                    "design": fmt.design,
                    "qc_score": score,
                    "qc_passed": fmt.qc_passed,
                    "attempts": len(fmt.attempts),
                    "seed": seed,
                    "files": ", ".join(str(folder / name) for name in fmt.files),
                }
            )
    return rows


def publish_run_artifacts(outcome: PublishedRun) -> dict[str, UUID]:
    """Create the run's markdown and table artifacts; return their ids by kind.

    Call inside the flow run, after publishing. Never raises: outside a flow run
    nothing is created, and an artifact that cannot be made is logged as a
    warning and left out of the result.
    """
    created: dict[str, UUID] = {}
    if not _in_flow_run("run artifacts"):
        return created
    manifest, folder = outcome.manifest, outcome.folder
    key = artifact_key(manifest.brief)
    brief = manifest.brief
    description = f"Flyers for {brief.business}: {brief.event}"
    try:
        created["markdown"] = create_markdown_artifact(
            markdown=run_markdown(manifest, folder, outcome.previews),
            key=key,
            description=plain_description(description),
            _sync=True,  # type: ignore[call-arg]
        )
    except Exception as exc:  # an artifact must never fail the run
        step_logger().warning("markdown artifact %s not created: %s", key, exc)
    try:
        created["table"] = create_table_artifact(
            table=run_table(manifest, folder),
            key=f"{key}-files",
            description=plain_description(f"{description} (files)"),
            _sync=True,  # type: ignore[call-arg]
        )
    except Exception as exc:
        step_logger().warning("table artifact %s-files not created: %s", key, exc)
    return created


class ProgressArtifact:
    """A run's progress artifact, moved on by step events from any variant thread.

    Progress is the share of distinct steps (step, variant, format) finished out
    of ``total_steps``; repeated attempts and fallbacks do not count twice. It
    stays below 100 until ``finish``. Updates are throttled (at most one per
    ``interval_s``, plus the first finished step of each stage), sent one at a
    time and only upwards, so the UI never sees progress go back.
    """

    def __init__(
        self,
        total_steps: int,
        key: str,
        description: str = "",
        interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self.total_steps = max(1, total_steps)
        self.key = key
        self.description = description
        self.interval_s = interval_s
        self.artifact_id: UUID | None = None
        self._done: set[tuple[str, int | None, str | None]] = set()
        self._stages: set[str] = set()
        self._sent_at = float("-inf")
        self._sent = -1.0
        self._lock = threading.Lock()  # guards the counts
        self._send_lock = threading.Lock()  # one request at a time, in order

    @property
    def percent(self) -> float:
        """Progress so far, 0 to 99 (100 only once finished)."""
        with self._lock:
            done = len(self._done)
        return min(99.0, round(100.0 * done / self.total_steps, 1))

    def start(self) -> UUID | None:
        """Create the artifact at 0; return its id, or ``None`` when it could not be made.

        Never raises: outside a flow run, or when the server refuses, it logs a
        warning and every later update is skipped.
        """
        if not _in_flow_run("progress artifact"):
            return None
        try:
            self.artifact_id = create_progress_artifact(
                progress=0.0,
                key=self.key,
                description=plain_description(self.description),
                _sync=True,  # type: ignore[call-arg]
            )
            self._sent = 0.0
        except Exception as exc:  # an artifact must never fail the run
            step_logger().warning("progress artifact %s not created: %s", self.key, exc)
        return self.artifact_id

    def on_event(self, event: StepEvent) -> None:
        """Count a finished step; update the artifact when due. Never raises."""
        if event.state != "finished" or self.artifact_id is None:
            return
        with self._lock:
            key = (event.step, event.variant, event.format)
            if key in self._done:
                return
            self._done.add(key)
            new_stage = event.step not in self._stages
            self._stages.add(event.step)
            now = time.monotonic()
            if not new_stage and now - self._sent_at < self.interval_s:
                return
            self._sent_at = now
        self._send(self.percent)

    def listener(self, previous: Listener | None) -> Listener:
        """Return a listener that passes each event to ``previous`` (if any), then to this.

        A failure here never reaches the run; ``previous`` (the command line's
        display) raises as it would alone.
        """

        def listen(event: Any) -> None:
            if previous is not None:
                previous(event)
            try:
                self.on_event(event)
            except Exception as exc:  # progress must never fail the run
                logging.getLogger("hyperlocal").warning("progress update failed: %s", exc)

        return listen

    def finish(self, completed: bool = True) -> None:
        """Send 100 when ``completed``, else the progress reached (a failed run). Never raises."""
        self._send(100.0 if completed else self.percent)

    def _send(self, value: float) -> None:
        with self._send_lock:
            artifact_id = self.artifact_id
            # A later event may have sent more already while this thread waited.
            if artifact_id is None or value <= self._sent:
                return
            try:
                update_progress_artifact(artifact_id, value, _sync=True)  # type: ignore[call-arg]
            except Exception as exc:
                step_logger().warning("progress artifact %s not updated: %s", self.key, exc)
                # A server that refused once will refuse again: stop asking.
                self.artifact_id = None
                return
            self._sent = value


@contextmanager
def tracked_progress(
    listener_var: contextvars.ContextVar[Any],
    total_steps: int,
    key: str,
    description: str = "",
) -> Iterator[ProgressArtifact]:
    """Create a progress artifact and feed it every step event while the block runs.

    ``listener_var`` is the run's listener context variable (``tasks.progress.progress_listener``);
    the listener already set there (the command line's display) keeps receiving
    every event. Threads started in the block with a copy of the context report
    too. At the end the artifact is set to 100, or left where the run stopped
    when the block raises (the exception propagates unchanged).
    """
    progress = ProgressArtifact(total_steps, key, description)
    progress.start()
    token = listener_var.set(progress.listener(listener_var.get()))
    completed = False
    try:
        yield progress
        completed = True
    finally:
        listener_var.reset(token)
        progress.finish(completed)
