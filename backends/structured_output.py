"""Structured answers from chat models: find the JSON, validate it, re-ask when it is wrong.

Local servers rarely enforce a schema (mlx_lm.server ignores ``response_format``,
others refuse it), and small models wrap their JSON in reasoning, prose or code
fences. So every text backend extracts the first JSON object from whatever came
back, validates it with pydantic plus any extra checks, and on failure shows the
model its own answer and the reason, a bounded number of times. Nothing here
knows about HTTP or Prefect: vision backends reuse it as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from backends.work_log import WorkLog
from hyperlocal.errors import InvalidModelOutput
from hyperlocal.prompts.llm_tokens import ChatMessage

ModelT = TypeVar("ModelT", bound=BaseModel)

#: How the work log's note of a step's final rejection begins.
FINAL_REJECTION = "rejected after "
#: Characters of a rejected answer quoted in the final error (it must stay one line).
QUOTE_CHARS = 120
#: Characters of a rejection reason sent back to the model or put in an error.
REASON_CHARS = 300

_THINK_BLOCK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"^\s*<think(?:ing)?>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*(?:json5?|javascript|js)?[ \t]*\r?\n?(.*?)```", re.DOTALL | re.I)


def one_line(text: str, limit: int) -> str:
    """Return ``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def strip_reasoning(text: str) -> str:
    """Return ``text`` without ``<think>`` reasoning: closed blocks, a dangling close, or an
    unclosed leading block (the model ran out of tokens while thinking)."""
    text = _THINK_BLOCK.sub("", text)
    # Some chat templates put the opening tag in the prompt: only "</think>" comes back.
    close = _THINK_CLOSE.search(text)
    if close:
        text = text[close.end() :]
    if _THINK_OPEN.match(text):
        return ""
    return text.strip()


def _first_object(text: str) -> dict[str, Any] | None:
    # raw_decode from each "{" finds the first balanced object and copes with braces
    # inside strings, which a hand-written brace counter gets wrong.
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def extract_json(text: str) -> dict[str, Any]:
    """Return the first JSON object in a model's answer.

    Drops ``<think>`` reasoning first, then prefers a fenced code block (the
    model's own marking of its answer) and falls back to the first balanced
    object in the prose. Raises ``InvalidModelOutput`` with a short reason.
    """
    if not text or not text.strip():
        raise InvalidModelOutput("the answer is empty")
    body = strip_reasoning(text)
    if not body:
        raise InvalidModelOutput("the answer holds only <think> reasoning, no JSON")
    for block in _FENCE.findall(body):
        found = _first_object(block)
        if found is not None:
            return found
    found = _first_object(body)
    if found is None:
        if body.lstrip().startswith("{"):
            raise InvalidModelOutput("the JSON object is incomplete or malformed")
        raise InvalidModelOutput("no JSON object in the answer")
    return found


def validation_reason(exc: ValidationError, limit: int = REASON_CHARS) -> str:
    """Return a pydantic validation error as one short line: ``field: problem; ...``."""
    parts = []
    for error in exc.errors(include_url=False)[:4]:
        where = ".".join(str(p) for p in error["loc"]) or "the object"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"{more} more")
    return one_line("; ".join(parts), limit)


def _retry_prompt(reason: str) -> ChatMessage:
    return ChatMessage(
        role="user",
        content=(
            f"That answer was rejected: {reason}. Answer again with one corrected JSON "
            "object, and nothing else."
        ),
    )


def _reask(
    messages: Sequence[ChatMessage],
    answer: str,
    reason: str,
    fits: Callable[[list[ChatMessage]], bool] | None,
) -> list[ChatMessage]:
    """Return the next conversation: the prompt, the rejected answer and the reason.

    Only one rejected answer is ever quoted (the latest), so a conversation does
    not grow with each re-ask; when even that would not fit the context window,
    the answer is quoted shorter, and then not at all (the reason alone).
    """
    retry = _retry_prompt(one_line(reason, REASON_CHARS))
    candidates = []
    if answer.strip():
        candidates.append([ChatMessage(role="assistant", content=answer), retry])
        short = one_line(answer, REASON_CHARS)
        if short != answer:
            candidates.append([ChatMessage(role="assistant", content=short), retry])
    candidates.append([retry])
    for tail in candidates:
        conversation = [*messages, *tail]
        if fits is None or fits(conversation):
            return conversation
    return [*messages, retry]


def ask_structured(
    ask: Callable[[list[ChatMessage]], str],
    messages: Sequence[ChatMessage],
    model_type: type[ModelT],
    validate_extra: Callable[[ModelT], list[str]] | None = None,
    attempts: int = 3,
    *,
    fits: Callable[[list[ChatMessage]], bool] | None = None,
    log: WorkLog | None = None,
) -> ModelT:
    """Ask until the answer is a valid ``model_type``; return it.

    ``ask(conversation)`` returns the model's text; it may raise
    ``InvalidModelOutput`` (empty or cut-off answer), which counts as a failed
    attempt. Other faults from ``ask`` (passing faults, configuration errors)
    pass through at once. ``validate_extra`` returns problems pydantic cannot
    see (e.g. ``fact_scan.contradictions``). After each failure the latest answer
    and the reason go back to the model, fitted by ``fits`` (prompt plus answer
    within the context window); each reason is written to ``log``. Raises
    ``InvalidModelOutput`` after ``attempts`` failures, with one line: what the
    model returned and why it was rejected.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    conversation = list(messages)
    answer = ""
    reason = ""
    for attempt in range(1, attempts + 1):
        try:
            answer = ask(conversation)
        except InvalidModelOutput as exc:
            answer, reason = "", str(exc)
        else:
            try:
                result = model_type.model_validate(extract_json(answer))
                problems = validate_extra(result) if validate_extra else []
                if not problems:
                    return result
                reason = one_line("; ".join(problems), REASON_CHARS)
            except InvalidModelOutput as exc:
                reason = str(exc)
            except ValidationError as exc:
                reason = validation_reason(exc)
        if attempt < attempts:
            if log is not None:
                log.reask(one_line(reason, REASON_CHARS))
            conversation = _reask(messages, answer, reason, fits)
    if log is not None:
        log.note(f"{FINAL_REJECTION}{attempts} answers: {one_line(reason, REASON_CHARS)}")
    quoted = one_line(answer, QUOTE_CHARS) if answer.strip() else "nothing usable"
    raise InvalidModelOutput(
        f"no valid {model_type.__name__} after {attempts} attempts: the model returned "
        f"{quoted!r}, rejected because {one_line(reason, REASON_CHARS)}"
    )
