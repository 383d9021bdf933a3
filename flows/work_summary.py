"""The command line's account of what the models did: one line per model step, then why.

Read from the manifest's step records (``StepRecord.work``): requests sent, tokens in
and out, time, how the answer was held to its schema, each re-ask with its reason,
each retried fault, and notes (a probe's verdict, a text cut to fit).
"""

from __future__ import annotations

from collections import Counter

from backends.structured_output import FINAL_REJECTION
from hyperlocal.models import RunManifest, StepRecord

STEP_NAMES = {"write_copy": "copy", "direct_art": "art direction", "check_image": "check"}


def _step_label(record: StepRecord) -> str:
    name = STEP_NAMES.get(record.step, record.step)
    if record.format:
        name = f"{record.format} {name}"
    if record.attempt and record.attempt > 1:
        name = f"{name} (picture {record.attempt})"
    return f"variant {record.variant} {name}" if record.variant is not None else name


def work_lines(manifest: RunManifest) -> list[tuple[str, str]]:
    """Return ``(kind, text)`` lines of each computed model step; kinds: info, note, warning.

    Steps that sent no model request (builtin) get a line only when they have notes
    or cuts. Every step, cached or not, lists the texts it cut to fit: the flyer
    carries them. Never raises.
    """
    lines: list[tuple[str, str]] = []
    for record in manifest.steps:
        work = record.work
        if work is None:
            continue
        label = _step_label(record)
        cached = " (cached)" if record.cached else ""
        lines += [("note", f"{label}{cached}: {cut}") for cut in work.cuts]
        if record.cached:
            continue
        if work.requests:
            plural = "s" if work.requests != 1 else ""
            estimated = " (estimated)" if work.tokens_estimated else ""
            how = f", {work.structured_output}" if work.structured_output else ""
            outcome = "failed" if record.error else "ok"
            lines.append(
                (
                    "info",
                    f"{label}: {work.writer}{how}: {work.requests} request{plural}, "
                    f"{work.prompt_tokens} tokens in, {work.completion_tokens} out{estimated}, "
                    f"{work.seconds:.1f} s, {outcome}",
                )
            )
        for reason, times in Counter(work.reasks).items():
            again = "re-asked" if times == 1 else f"re-asked {times} times"
            lines.append(("note", f"{label}: {again} because {reason}"))
        for fault, times in Counter(work.retries).items():
            again = "retried" if times == 1 else f"retried {times} times"
            lines.append(("warning", f"{label}: {again} after {fault}"))
        # A step's final rejection is already the run's error or its fallback's warning.
        notes = [n for n in work.notes if not (record.error and n.startswith(FINAL_REJECTION))]
        lines += [("note", f"{label}: {note}") for note in notes]
    return lines
