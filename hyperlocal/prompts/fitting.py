"""Fitting structured image prompts into CLIP's windows, for one or two text encoders.

Phrases carry a role and a priority. Fitting never cuts inside a phrase: the
least important phrases are dropped whole until the prompt fits (``fit`` mode),
or phrases are packed into 75-token chunks that no phrase straddles, up to a
cap (``chunk`` mode, for backends that encode long prompts chunk by chunk).
Subject and style lead, because the first tokens feed SDXL's pooled embedding.
Only a single phrase longer than a whole window is ever shortened, at a word
boundary, and that is reported.

Counts are of the text the backend actually encodes: emphasis syntax such as
``(phrase:1.2)`` is parsed away by A1111 and compel before tokenizing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hyperlocal.models import (
    EncoderFit,
    FittedPrompt,
    ImagePrompt,
    LongPrompts,
    PhraseRole,
    PromptPhrase,
    PromptSyntax,
)
from hyperlocal.prompts.clip_tokens import CLIP_WINDOW, TokenCounter

#: Roles that lead the prompt: CLIP's first tokens feed SDXL's pooled embedding.
LEADING_ROLES: tuple[PhraseRole, ...] = ("subject", "style")
#: With two encoders, what each one is told (the subject goes to both).
ENCODER_ROLES: dict[int, tuple[PhraseRole, ...]] = {
    1: ("subject", "setting", "composition"),
    2: ("subject", "style", "lighting", "quality"),
}
SEPARATOR = ", "


@dataclass(frozen=True)
class MaxCounter:
    """Counts with several tokenizers and keeps the largest count (one text, many encoders)."""

    counters: tuple[TokenCounter, ...]

    @property
    def name(self) -> str:
        """The names of the counters, joined."""
        return " + ".join(dict.fromkeys(c.name for c in self.counters))

    def count(self, text: str) -> int:
        """Return the largest token count of ``text`` among the counters."""
        return max(counter.count(text) for counter in self.counters)


def join_phrases(phrases: Sequence[PromptPhrase]) -> str:
    """Return the phrases' plain text as one comma-separated prompt (what CLIP encodes)."""
    return SEPARATOR.join(p.text for p in phrases)


def lead_order(phrases: Sequence[PromptPhrase]) -> list[PromptPhrase]:
    """Return the phrases with subject and style first, the rest in their given order."""
    leading = [p for role in LEADING_ROLES for p in phrases if p.role == role]
    return leading + [p for p in phrases if p.role not in LEADING_ROLES]


def _escape(text: str, syntax: str) -> str:
    # Brackets in a phrase would read as emphasis; quotes would end a compel segment.
    for ch in "\\()[]":
        text = text.replace(ch, "\\" + ch)
    if syntax == "compel":
        text = text.replace('"', '\\"')
    return text


def render_phrase(phrase: PromptPhrase, weights: str) -> str:
    """Return one phrase in the backend's emphasis syntax (plain when its weight is 1)."""
    if weights == "none":
        return phrase.text
    text = _escape(phrase.text, weights)
    if abs(phrase.weight - 1.0) < 1e-6:
        return text
    if weights == "a1111":
        return f"({text}:{phrase.weight:g})"
    return f"({text}){phrase.weight:g}"


def render_chunks(chunks: Sequence[Sequence[PromptPhrase]], syntax: PromptSyntax) -> str:
    """Return chunks as one prompt string in the backend's syntax."""
    parts = [SEPARATOR.join(render_phrase(p, syntax.weights) for p in c) for c in chunks]
    if len(parts) <= 1:
        return parts[0] if parts else ""
    if syntax.chunks == "a1111":
        # BREAK pads the current 75-token chunk, so the next phrase starts a new one.
        return " BREAK ".join(parts)
    if syntax.chunks == "compel":
        quoted = ", ".join('"' + part.replace('"', '\\"') + '"' for part in parts)
        return f"({quoted}).and()"
    return SEPARATOR.join(parts)


def _shorten(phrase: PromptPhrase, counter: TokenCounter, limit: int) -> PromptPhrase:
    words = phrase.text.split()
    while len(words) > 1 and counter.count(" ".join(words)) > limit:
        words.pop()
    return phrase.model_copy(update={"text": " ".join(words)})


def _without_overlong(
    phrases: Sequence[PromptPhrase], counter: TokenCounter, limit: int
) -> tuple[list[PromptPhrase], list[PromptPhrase]]:
    kept, shortened = [], []
    for phrase in phrases:
        if counter.count(phrase.text) > limit:
            shortened.append(phrase)
            phrase = _shorten(phrase, counter, limit)
        kept.append(phrase)
    return kept, shortened


def drop_order(phrases: Sequence[PromptPhrase]) -> list[int]:
    """Return the indices of ``phrases`` in the order fitting drops them.

    Lowest priority first; among equals the later phrase first, so that earlier
    (leading) phrases stay longest.
    """
    return sorted(range(len(phrases)), key=lambda i: (phrases[i].priority, -i))


def fit_phrases(
    phrases: Sequence[PromptPhrase], counter: TokenCounter, limit: int = CLIP_WINDOW
) -> tuple[list[PromptPhrase], list[PromptPhrase], list[PromptPhrase]]:
    """Return ``(kept, dropped, shortened)``: phrases dropped whole, lowest priority first.

    The fewest drops (in ``drop_order``) that make the prompt fit are found by
    bisection, so a prompt of n phrases is tokenized about log2(n) times instead
    of n. Kept phrases stay in their given order. A phrase too long for the
    window on its own is shortened at a word boundary only when it is the last
    one left; its long form is then listed in ``shortened``.
    """
    if not phrases or counter.count(join_phrases(phrases)) <= limit:
        return list(phrases), [], []
    order = drop_order(phrases)

    def kept_after(drops: int) -> list[PromptPhrase]:
        gone = set(order[:drops])
        return [p for i, p in enumerate(phrases) if i not in gone]

    # Fewest drops in 1..n-1 that fit; n-1 (one phrase left) when none does.
    low, high = 1, len(phrases) - 1
    while low < high:
        middle = (low + high) // 2
        if counter.count(join_phrases(kept_after(middle))) <= limit:
            high = middle
        else:
            low = middle + 1
    drops = min(low, len(phrases) - 1)  # a lone phrase is never dropped, only shortened
    kept = kept_after(drops)
    dropped = [phrases[i] for i in order[:drops]]
    shortened: list[PromptPhrase] = []
    if counter.count(join_phrases(kept)) > limit:
        shortened.append(kept[0])
        kept = [_shorten(kept[0], counter, limit)]
    return kept, dropped, shortened


def pack_chunks(
    phrases: Sequence[PromptPhrase], counter: TokenCounter, limit: int = CLIP_WINDOW
) -> list[list[PromptPhrase]]:
    """Return the phrases packed in order into chunks of at most ``limit`` tokens each.

    A phrase that does not fit in the current chunk starts the next one, so no
    phrase is ever split across chunks. Every phrase must fit a chunk alone.
    """
    chunks: list[list[PromptPhrase]] = []
    for phrase in phrases:
        if chunks and counter.count(join_phrases([*chunks[-1], phrase])) <= limit:
            chunks[-1].append(phrase)
        else:
            chunks.append([phrase])
    return chunks


def chunk_phrases(
    phrases: Sequence[PromptPhrase],
    counter: TokenCounter,
    max_chunks: int,
    limit: int = CLIP_WINDOW,
) -> tuple[list[list[PromptPhrase]], list[PromptPhrase], list[PromptPhrase]]:
    """Return ``(chunks, dropped, shortened)`` for chunk mode.

    Phrases longer than a chunk are shortened first; then the least important
    phrases are dropped whole until the packing needs at most ``max_chunks``.
    """
    kept, shortened = _without_overlong(phrases, counter, limit)
    order = drop_order(kept)
    gone: set[int] = set()

    def remaining() -> list[PromptPhrase]:
        return [p for i, p in enumerate(kept) if i not in gone]

    for index in order:
        left = remaining()
        if len(left) <= 1 or len(pack_chunks(left, counter, limit)) <= max_chunks:
            break
        gone.add(index)
    dropped = [kept[i] for i in order if i in gone]
    return pack_chunks(remaining(), counter, limit), dropped, shortened


def _fit_encoder(
    name: str,
    phrases: Sequence[PromptPhrase],
    counter: TokenCounter,
    syntax: PromptSyntax,
    mode: LongPrompts,
    max_chunks: int,
    limit: int,
) -> EncoderFit:
    before = counter.count(join_phrases(phrases)) if phrases else 0
    if mode == "chunk" and syntax.chunks != "none":
        chunks, dropped, shortened = chunk_phrases(phrases, counter, max_chunks, limit)
    else:
        kept, dropped, shortened = fit_phrases(phrases, counter, limit)
        chunks = [kept] if kept else []
    return EncoderFit(
        encoder=name,
        counter=counter.name,
        prompt=render_chunks(chunks, syntax),
        tokens_before=before,
        tokens=[counter.count(join_phrases(chunk)) for chunk in chunks],
        dropped=dropped,
        shortened=shortened,
    )


def fit_image_prompt(
    prompt: ImagePrompt,
    *,
    syntax: PromptSyntax,
    counters: Sequence[TokenCounter],
    zone: str,
    mode: LongPrompts = "fit",
    max_chunks: int = 3,
    limit: int = CLIP_WINDOW,
) -> FittedPrompt:
    """Return the prompt fitted for a backend: one prompt, or one per encoder, and a report.

    ``counters`` has one tokenizer per encoder (the second is used for
    ``prompt_2``). With two encoders, subject, setting and composition go to the
    first; subject, style, lighting and quality to the second. The negative
    prompt is fitted once, counted with every encoder's tokenizer.
    """
    phrases = lead_order(prompt.phrases)
    first = counters[0]
    fits: list[EncoderFit] = []
    if syntax.encoders == 2 and len(counters) > 1:
        for number, name in ((1, "prompt"), (2, "prompt_2")):
            own = [p for p in phrases if p.role in ENCODER_ROLES[number]]
            fits.append(
                _fit_encoder(name, own, counters[number - 1], syntax, mode, max_chunks, limit)
            )
    else:
        fits.append(_fit_encoder("prompt", phrases, first, syntax, mode, max_chunks, limit))
    negative_counter = MaxCounter(tuple(counters)) if len(counters) > 1 else first
    negative = _fit_encoder(
        "negative_prompt",
        list(prompt.negative),
        negative_counter,
        syntax,
        mode,
        max_chunks,
        limit,
    )
    two = len(fits) == 2
    return FittedPrompt(
        prompt=fits[0].prompt,
        negative_prompt=negative.prompt,
        prompt_2=fits[1].prompt if two else None,
        negative_prompt_2=negative.prompt if two else None,
        mode=mode if syntax.chunks != "none" else "fit",
        syntax=syntax,
        limit=limit,
        encoders=fits,
        negative=negative,
        zone=zone,
    )
