"""The chat prompts language-model text backends send, and how they ask for valid answers.

Both prompts carry the brief as compact JSON data (never spliced into the
instructions) and ask for one JSON object that the caller validates with
pydantic. The copy prompt asks only for the written parts (``CopyDraft``): the
date, time, place and price are placed from the brief by code. When the answer is
held to its schema (constrained decoding, a server that honours the schema) the
prompt names the fields in a sentence instead of pasting the schema.
``fit_to_context`` counts a prompt exactly (``hyperlocal.prompts.llm_tokens``)
and, when prompt plus answer would not fit the model's context window, trims
the least important brief fields, longest first, never a fact.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

from backends.base import ArtRequest, CopyRequest
from backends.structured_output import ask_structured
from backends.work_log import WorkLog
from hyperlocal.errors import ConfigurationError
from hyperlocal.fact_scan import contradictions
from hyperlocal.models import ArtDraft, Brief, CopyDraft, FlyerCopy, ImagePrompt
from hyperlocal.prompts.llm_tokens import ChatMessage, TextTokenCounter, count_messages
from hyperlocal.text import clip_words

logger = logging.getLogger("hyperlocal.text")

#: Brief fields that may be shortened to fit, least important first. Facts (date,
#: time, place, price), the business and the event are never touched.
TRIMMABLE: tuple[str, ...] = ("details", "audience")
#: Each trim keeps this share of the field, cut at a word boundary.
TRIM_SHARE = 0.6

COPY_SYSTEM = """You write the words of flyers for local businesses and events.
{format}
Rules:
- The flyer prints the brief's date, time, place and price by itself: do not repeat
  them, and never name another day, date, time, price or address.
- Write in the brief's tone for its audience; no emoji; no hashtags.
- Write every word in the brief's "language" (a BCP 47 tag) when it names one,
  else in the language the brief is written in.
- At most 4 body points, each a short phrase.
- This is variant {variant} of {variants}: lead with the "{angle}" angle so the
  variants differ."""

#: The copy's fields in words, for a model whose answer is held to the schema anyway.
COPY_FIELDS = """Answer with one JSON object: "angle" (a word or two), "headline" (at most 70
characters), "subhead" (one line), "body_points" (a list), "call_to_action" (at most 60
characters) and "fine_print"."""

ART_SYSTEM = """You art-direct the background photograph of a flyer.
{format}
Rules:
- Describe a picture with NO text, letters, signs, logos or watermarks in it.
- One "subject" phrase (priority 100) says what the picture shows; add "style",
  "setting", "lighting" and "quality" phrases, most important first, each a short
  comma-free phrase, with priorities from 100 (keep) to 0 (drop first).
- Put what must never appear in "negative" (always text, letters and watermarks)."""

#: The art direction's fields in words, for a model held to the schema anyway.
ART_FIELDS = """Answer with one JSON object: "phrases" (at most 6) and "negative" (at most 4),
lists of objects with "text" (a few words), "role" and "priority"."""

#: For a model whose answer nothing holds to the schema: the schema itself, in the prompt.
SCHEMA_FORMAT = """Answer with one JSON object and nothing else, matching this JSON schema:
{schema}"""

ANGLES = ("announcement", "invitation", "urgency", "community", "benefit", "story")


def angle_for(variant: int) -> str:
    """Return the creative angle asked of a variant (so variants differ)."""
    return ANGLES[(variant - 1) % len(ANGLES)]


def _brief_json(brief: Brief, *, colours: bool) -> str:
    # Compact, and only what the step can use: every token costs seconds on a laptop CPU.
    brand = {"logo", "heading_font", "body_font"} | (set() if colours else {"colors"})
    data = brief.model_dump(mode="json", exclude={"brand": brand}, exclude_defaults=True)
    if not data.get("brand"):
        data.pop("brand", None)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _format(fields: str, answer_type: type[BaseModel], schema_in_prompt: bool) -> str:
    if not schema_in_prompt:
        return fields
    schema = json.dumps(answer_type.model_json_schema(), separators=(",", ":"))
    return SCHEMA_FORMAT.format(schema=schema)


def copy_messages(
    brief: Brief, variant: int, variants: int, *, schema_in_prompt: bool = True
) -> list[ChatMessage]:
    """Return the chat prompt that asks for the written copy (a ``CopyDraft``) of one variant.

    ``schema_in_prompt=False`` describes the fields in a sentence instead of pasting
    the JSON schema: for a model whose decoding is held to the schema.
    """
    system = COPY_SYSTEM.format(
        format=_format(COPY_FIELDS, CopyDraft, schema_in_prompt),
        variant=variant,
        variants=variants,
        angle=angle_for(variant),
    )
    return [
        ChatMessage(role="system", content=system),
        ChatMessage(
            role="user", content="The brief, as JSON data:\n" + _brief_json(brief, colours=False)
        ),
    ]


def art_messages(
    brief: Brief, copy: CopyDraft, *, schema_in_prompt: bool = True
) -> list[ChatMessage]:
    """Return the chat prompt that asks for the art direction of one variant."""
    words = copy.model_dump_json(include={"headline", "subhead", "body_points"})
    return [
        ChatMessage(
            role="system",
            content=ART_SYSTEM.format(format=_format(ART_FIELDS, ArtDraft, schema_in_prompt)),
        ),
        ChatMessage(
            role="user",
            content="The brief, as JSON data:\n"
            + _brief_json(brief, colours=True)
            + "\nThe flyer's words, as JSON data:\n"
            + words,
        ),
    ]


class FittedChat(BaseModel):
    """A chat prompt that fits the context window, and what was trimmed to make it fit."""

    messages: list[ChatMessage]
    prompt_tokens: int
    trimmed: list[str]


def fit_to_context(
    build: Callable[[Brief], list[ChatMessage]],
    brief: Brief,
    *,
    context_window: int,
    max_output: int,
    counter: TextTokenCounter,
) -> FittedChat:
    """Return ``build(brief)`` with brief fields trimmed until prompt and answer fit.

    Trims the longest of the least important fields (``TRIMMABLE``) to 60 % at
    a word boundary, again and again, logging one warning per field trimmed.
    Raises ``ConfigurationError`` when even the untrimmable rest does not fit.
    """
    budget = context_window - max_output
    trimmed: dict[str, int] = {}
    current = brief
    messages = build(current)
    tokens = count_messages(messages, counter)
    while tokens > budget:
        candidates = [name for name in TRIMMABLE if getattr(current, name)]
        if not candidates:
            raise ConfigurationError(
                f"the prompt needs {tokens} tokens plus {max_output} for the answer, more than "
                f"the context window of {context_window}: raise HYPERLOCAL_TEXT__CONTEXT_WINDOW "
                "or lower HYPERLOCAL_TEXT__MAX_TOKENS"
            )
        # Longest first, the less important field winning a tie (earlier in TRIMMABLE).
        name = max(candidates, key=lambda n: (len(getattr(current, n)), -TRIMMABLE.index(n)))
        value: str = getattr(current, name)
        shorter = clip_words(value, int(len(value) * TRIM_SHARE)) if len(value) > 8 else ""
        trimmed.setdefault(name, len(value))
        current = current.model_copy(update={name: shorter})
        messages = build(current)
        tokens = count_messages(messages, counter)
    for name, before in trimmed.items():
        logger.warning(
            "brief field %r trimmed from %d to %d characters to fit the %d-token context window",
            name,
            before,
            len(getattr(current, name)),
            context_window,
        )
    return FittedChat(messages=messages, prompt_tokens=tokens, trimmed=sorted(trimmed))


#: Sends one conversation and returns the model's text; the second argument is the
#: pydantic type the answer must be (constrained decoding and servers that honour a
#: JSON schema use it).
AskModel = Callable[[list[ChatMessage], type[BaseModel]], str]


@dataclass(frozen=True)
class PromptBudget:
    """How a backend's prompts are counted, bounded and shaped."""

    counter: TextTokenCounter
    context_window: int
    max_output: int
    attempts: int = 3
    #: False when the answer is held to the schema (constrained decoding, a server that
    #: honours it): the prompt then names the fields instead of pasting the schema.
    schema_in_prompt: bool = True

    def fits(self, messages: list[ChatMessage]) -> bool:
        """Return whether ``messages`` and a full answer fit the context window."""
        return count_messages(messages, self.counter) + self.max_output <= self.context_window


#: Unicode categories a flyer's words never need: symbols (emoji, dingbats), private-use
#: and unassigned code points. The prompt forbids emoji; this makes the rule checkable,
#: so a model that adds one is asked again instead of failing the typesetting.
_NOT_WORDS = {"So", "Co", "Cn", "Cs"}


def symbol_problems(draft: CopyDraft) -> list[str]:
    """Return each written text that holds an emoji, symbol or unassigned character."""
    problems = []
    for where, text in draft.written_runs().items():
        found = sorted({c for c in text if unicodedata.category(c) in _NOT_WORDS})
        if found:
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in found[:3])
            problems.append(f"{where} contains {shown}: write words only, no emoji or symbols")
    return problems


def _note_trims(log: WorkLog | None, fitted: FittedChat, context_window: int) -> None:
    if log is not None:
        for name in fitted.trimmed:
            log.note(f"brief field {name!r} shortened to fit the {context_window}-token context")


def request_copy(
    ask: AskModel, request: CopyRequest, budget: PromptBudget, log: WorkLog | None = None
) -> FlyerCopy:
    """Ask a language model for the copy of one variant; place the brief's facts in it.

    The model writes a ``CopyDraft``; an answer that names a weekday, date, time,
    amount or address the brief does not back (``fact_scan.contradictions``) is
    asked again with the reason. Re-asks and trims go to ``log``. Raises
    ``InvalidModelOutput`` after ``budget.attempts`` rejected answers,
    ``ConfigurationError`` when the prompt cannot fit, and whatever ``ask`` raises.
    """
    fitted = fit_to_context(
        lambda brief: copy_messages(
            brief, request.variant, request.variants, schema_in_prompt=budget.schema_in_prompt
        ),
        request.brief,
        context_window=budget.context_window,
        max_output=budget.max_output,
        counter=budget.counter,
    )
    _note_trims(log, fitted, budget.context_window)
    draft = ask_structured(
        lambda messages: ask(messages, CopyDraft),
        fitted.messages,
        CopyDraft,
        lambda draft: contradictions(draft, request.brief) + symbol_problems(draft),
        attempts=budget.attempts,
        fits=budget.fits,
        log=log,
    )
    return FlyerCopy.from_draft(draft, request.brief)


def request_art(
    ask: AskModel, request: ArtRequest, budget: PromptBudget, log: WorkLog | None = None
) -> ImagePrompt:
    """Ask a language model for the art direction of one variant; raises like ``request_copy``."""
    fitted = fit_to_context(
        lambda brief: art_messages(brief, request.copy_, schema_in_prompt=budget.schema_in_prompt),
        request.brief,
        context_window=budget.context_window,
        max_output=budget.max_output,
        counter=budget.counter,
    )
    _note_trims(log, fitted, budget.context_window)
    draft = ask_structured(
        lambda messages: ask(messages, ArtDraft),
        fitted.messages,
        ArtDraft,
        attempts=budget.attempts,
        fits=budget.fits,
        log=log,
    )
    return draft.prompt()
