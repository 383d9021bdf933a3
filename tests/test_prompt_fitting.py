"""Fitting image prompts into CLIP's windows: exact counts, whole phrases, two encoders."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS
from hyperlocal.models import ImagePrompt, PromptPhrase, PromptSyntax
from hyperlocal.prompts.clip_tokens import CLIP_WINDOW, EncodeCounter, clip_counter, normalise
from hyperlocal.prompts.fitting import (
    chunk_phrases,
    fit_image_prompt,
    fit_phrases,
    join_phrases,
    lead_order,
    render_phrase,
)
from hyperlocal.settings import load_settings
from tasks.prompts import fit_prompt
from tests.clip_vocab import hf_clip_tokenizer

COUNTER = clip_counter()
ROLES = ["subject", "setting", "composition", "style", "lighting", "quality"]
# Letters and digits of many scripts, accents (composed and combining), emoji, CJK,
# punctuation: what a model or a user may put in a prompt.
SAMPLES = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "àáâãäåçèéêëìíîïñòóôõöùúûüýÿÀÉÎÕÜßøæœ"
    "\u0301\u0308\u0327"  # combining accents: NFD input
    ".,;:!?'\"()[]{}<>/\\|@#$%^&*-_+=~`…–—“”‘’«»£€¥©®°±×÷"
    "東京の桜大阪中文字서울한국어ÄΣσςΩπ"
    "🍞🥐☕🎵🎉👍🏽👨‍👩‍👧❤️🌸"
    "   \t"
)
# Code points unassigned in this Python's Unicode tables are left out: the two Rust
# regex engines classify newly assigned characters (e.g. the Unicode 16 hieroglyph
# U+13460) by their own, different Unicode versions. For those, a model's own
# tokenizer (EncodeCounter) is the truth, and the fitter uses it when it has one.
prompt_text = st.text(alphabet=st.sampled_from(SAMPLES), min_size=1, max_size=90) | st.text(
    st.characters(exclude_categories=["Cs", "Cn", "Co"], exclude_characters="\x00"),
    min_size=1,
    max_size=60,
)
words = st.text(
    alphabet=st.characters(categories=["Ll", "Lu", "Nd"], max_codepoint=0x2FFF),
    min_size=1,
    max_size=12,
)
phrase = st.builds(
    PromptPhrase,
    text=st.lists(words, min_size=1, max_size=8).map(" ".join),
    role=st.sampled_from(ROLES),
    priority=st.integers(0, 100),
    weight=st.sampled_from([1.0, 1.0, 1.2, 0.8, 1.5]),
)
phrase_lists = st.lists(phrase, min_size=1, max_size=25)
SYNTAXES = [
    PromptSyntax(),
    PromptSyntax(encoders=2, weights="compel", chunks="compel"),
    PromptSyntax(weights="a1111", chunks="a1111"),
]


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return hf_clip_tokenizer(tmp_path_factory.mktemp("clip-tokenizer"))


def hf_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, truncation=False)["input_ids"])


def our_ids(text: str) -> list[int]:
    return [49406, *COUNTER.encode(text), 49407]


def test_a_known_prompt_counts_like_clip() -> None:
    # "a photo of a cat" is [start, 320, 1125, 539, 320, 2368, end] in CLIP's vocabulary.
    assert our_ids("a photo of a cat") == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert COUNTER.count("A   Photo of a CAT") == 7


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt_text)
def test_counts_agree_with_transformers_clip_tokenizer(hf_tokenizer: Any, text: str) -> None:
    assert our_ids(text) == hf_ids(hf_tokenizer, text)


@pytest.mark.parametrize(
    "text",
    [
        "fish &amp; chips &lt;b&gt;",  # HTML entities: OpenAI's CLIP unescapes them
        "donâ€™t stop",  # mojibake: OpenAI's CLIP repairs it with ftfy
        "Cafe\u0301 NFD accents",  # decomposed accents: NFC first
        "ΟΔΟΣ ΠΑΝΕΠΙΣΤΗΜΙΟΥ",  # a word-final capital sigma lowercases to σ, not ς
    ],
)
def test_the_cases_where_clip_tokenizers_differ_follow_the_one_diffusers_loads(
    hf_tokenizer: Any, text: str
) -> None:
    # diffusers encodes with transformers, which neither unescapes HTML nor runs
    # ftfy: so the counter must not either, or it would under- or over-count.
    assert our_ids(text) == hf_ids(hf_tokenizer, text)
    assert normalise("Σ") == "σ"


@settings(max_examples=150, deadline=None)
@given(phrase_lists)
def test_a_fitted_prompt_never_exceeds_the_window(phrases: list[PromptPhrase]) -> None:
    kept, _, _ = fit_phrases(phrases, COUNTER)
    assert COUNTER.count(join_phrases(kept)) <= CLIP_WINDOW


def _is_input(phrase: PromptPhrase, phrases: list[PromptPhrase]) -> bool:
    return any(phrase is p for p in phrases)


@settings(max_examples=150, deadline=None)
@given(phrase_lists)
def test_fit_mode_keeps_whole_phrases_in_order(phrases: list[PromptPhrase]) -> None:
    kept, dropped, shortened = fit_phrases(phrases, COUNTER)
    whole = [p for p in kept if _is_input(p, phrases)]
    positions = [next(i for i, q in enumerate(phrases) if q is p) for p in whole]
    assert positions == sorted(positions)
    if not shortened:
        assert len(whole) == len(kept)
        assert len(kept) + len(dropped) == len(phrases)
    else:
        # Only a lone phrase longer than the window is cut, at a word boundary, and
        # it is reported.
        assert len(kept) == len(shortened) == 1
        assert shortened[0].text.startswith(kept[0].text)
        assert shortened[0].text[len(kept[0].text) :][:1] == " "


@settings(max_examples=150, deadline=None)
@given(phrase_lists)
def test_no_phrase_is_dropped_while_a_less_important_one_is_kept(
    phrases: list[PromptPhrase],
) -> None:
    kept, dropped, _ = fit_phrases(phrases, COUNTER)
    if kept and dropped:
        assert max(p.priority for p in dropped) <= min(p.priority for p in kept)


@settings(max_examples=100, deadline=None)
@given(phrase_lists)
def test_fitting_a_fitted_prompt_changes_nothing(phrases: list[PromptPhrase]) -> None:
    kept, _, _ = fit_phrases(phrases, COUNTER)
    assert fit_phrases(kept, COUNTER) == (kept, [], [])


@settings(max_examples=150, deadline=None)
@given(phrase_lists, st.integers(1, 4))
def test_chunk_mode_never_splits_a_phrase_and_caps_the_chunks(
    phrases: list[PromptPhrase], max_chunks: int
) -> None:
    chunks, dropped, shortened = chunk_phrases(phrases, COUNTER, max_chunks)
    assert 1 <= len(chunks) <= max_chunks
    flat = [p for chunk in chunks for p in chunk]
    for chunk in chunks:
        assert COUNTER.count(join_phrases(chunk)) <= CLIP_WINDOW
    # Every phrase is whole in exactly one chunk, or dropped, or shortened (reported).
    assert len(flat) + len(dropped) == len(phrases)
    for p in flat:
        assert _is_input(p, phrases) or any(s.text.startswith(p.text) for s in shortened)
    if dropped:
        assert max(p.priority for p in dropped) <= min(p.priority for p in flat)
    again, dropped_again, _ = chunk_phrases(flat, COUNTER, max_chunks)
    assert again == chunks
    assert dropped_again == []


@settings(max_examples=100, deadline=None)
@given(phrase_lists, phrase_lists, st.sampled_from(SYNTAXES), st.sampled_from(["fit", "chunk"]))
def test_every_encoder_window_stays_within_77_tokens(
    phrases: list[PromptPhrase],
    negative: list[PromptPhrase],
    syntax: PromptSyntax,
    mode: str,
) -> None:
    fitted = fit_image_prompt(
        ImagePrompt(phrases=phrases, negative=negative),
        syntax=syntax,
        counters=[COUNTER, COUNTER],
        zone="the lower half",
        mode=mode,  # type: ignore[arg-type]
        max_chunks=3,
    )
    for fit in [*fitted.encoders, fitted.negative]:
        assert all(tokens <= CLIP_WINDOW for tokens in fit.tokens)
        assert len(fit.tokens) <= 3
    assert len(fitted.encoders) == syntax.encoders


def test_subject_and_style_lead_the_prompt() -> None:
    phrases = [
        PromptPhrase(text="golden light", role="lighting", priority=40),
        PromptPhrase(text="oil painting", role="style", priority=80),
        PromptPhrase(text="a red bicycle", role="subject", priority=100),
    ]
    assert [p.role for p in lead_order(phrases)] == ["subject", "style", "lighting"]


PROMPT = ImagePrompt(
    phrases=[
        PromptPhrase(text="a cosy bakery with sourdough loaves", role="subject", priority=100),
        PromptPhrase(text="warm editorial photograph", role="style", priority=80, weight=1.2),
        PromptPhrase(text="on a rustic wooden table", role="setting", priority=60),
        PromptPhrase(text="empty space in the lower half", role="composition", priority=90),
        PromptPhrase(text="soft golden hour light", role="lighting", priority=40),
        PromptPhrase(text="sharp focus (35mm)", role="quality", priority=20),
    ],
    negative=[PromptPhrase(text="text, letters, watermark", role="quality", priority=100)],
)


def test_two_encoders_each_get_their_own_phrases_and_window() -> None:
    fitted = fit_image_prompt(
        PROMPT,
        syntax=PromptSyntax(encoders=2),
        counters=[COUNTER, COUNTER],
        zone="the lower half",
    )
    assert fitted.prompt == (
        "a cosy bakery with sourdough loaves, on a rustic wooden table, "
        "empty space in the lower half"
    )
    assert fitted.prompt_2 == (
        "a cosy bakery with sourdough loaves, warm editorial photograph, "
        "soft golden hour light, sharp focus (35mm)"
    )
    assert fitted.negative_prompt_2 == fitted.negative_prompt == "text, letters, watermark"
    assert [fit.encoder for fit in fitted.encoders] == ["prompt", "prompt_2"]


def test_a_one_prompt_backend_gets_one_prompt_with_subject_and_style_first() -> None:
    fitted = fit_image_prompt(
        PROMPT, syntax=PromptSyntax(weights="a1111"), counters=[COUNTER], zone="z"
    )
    assert fitted.prompt_2 is None
    assert fitted.prompt.startswith(
        "a cosy bakery with sourdough loaves, (warm editorial photograph:1.2), "
    )
    assert "sharp focus \\(35mm\\)" in fitted.prompt


def test_emphasis_is_written_in_each_backend_syntax_and_not_counted() -> None:
    heavy = PromptPhrase(text="red bicycle", role="subject", priority=1, weight=1.3)
    assert render_phrase(heavy, "a1111") == "(red bicycle:1.3)"
    assert render_phrase(heavy, "compel") == "(red bicycle)1.3"
    assert render_phrase(heavy, "none") == "red bicycle"
    fitted = fit_image_prompt(
        ImagePrompt(phrases=[heavy]),
        syntax=PromptSyntax(weights="a1111"),
        counters=[COUNTER],
        zone="z",
    )
    # A1111 parses the brackets and weight away before CLIP sees the text.
    assert fitted.encoders[0].tokens == [COUNTER.count("red bicycle")]


def _long_prompt() -> ImagePrompt:
    phrases = [
        PromptPhrase(
            text=f"detail number {i} of a very elaborate scene", role="setting", priority=50 - i
        )
        for i in range(20)
    ]
    return ImagePrompt(
        phrases=[PromptPhrase(text="a lighthouse", role="subject", priority=100), *phrases]
    )


def test_chunk_mode_uses_break_for_a1111_and_and_for_compel() -> None:
    a1111 = fit_image_prompt(
        _long_prompt(),
        syntax=PromptSyntax(weights="a1111", chunks="a1111"),
        counters=[COUNTER],
        zone="z",
        mode="chunk",
        max_chunks=2,
    )
    assert a1111.prompt.count(" BREAK ") == 1
    assert a1111.encoders[0].dropped  # over two chunks: the least important dropped
    assert len(a1111.encoders[0].tokens) == 2
    compel = fit_image_prompt(
        _long_prompt(),
        syntax=PromptSyntax(encoders=2, weights="compel", chunks="compel"),
        counters=[COUNTER, COUNTER],
        zone="z",
        mode="chunk",
        max_chunks=3,
    )
    assert re.fullmatch(r'\("[^"]+", "[^"]+"(, "[^"]+")?\)\.and\(\)', compel.prompt)


def test_chunk_mode_falls_back_to_fitting_for_backends_without_chunks() -> None:
    fitted = fit_image_prompt(
        _long_prompt(), syntax=PromptSyntax(), counters=[COUNTER], zone="z", mode="chunk"
    )
    assert fitted.mode == "fit"
    assert fitted.token_count <= CLIP_WINDOW


def test_the_model_tokenizer_is_used_when_the_backend_offers_one(hf_tokenizer: Any) -> None:
    own = EncodeCounter("tokenizer_2 of the model", lambda t: hf_tokenizer(t)["input_ids"])
    fitted = fit_image_prompt(_long_prompt(), syntax=PromptSyntax(), counters=[own], zone="z")
    assert fitted.encoders[0].counter == "tokenizer_2 of the model"
    assert fitted.encoders[0].tokens == [len(hf_tokenizer(fitted.prompt)["input_ids"])]


def test_fit_prompt_reports_per_encoder_what_it_dropped(caplog: pytest.LogCaptureFixture) -> None:
    long_tail = [
        PromptPhrase(text=f"extra detail number {i} with many words", role="quality", priority=5)
        for i in range(20)
    ]
    prompt = ImagePrompt(
        phrases=[PromptPhrase(text="a cosy bakery", role="subject", priority=100), *long_tail],
        negative=[PromptPhrase(text="text, letters, watermark", role="quality", priority=100)],
    )
    with caplog.at_level("WARNING"):
        fitted = fit_prompt.fn(
            prompt, place_design(FORMATS["letter"], "frosted").text_zone, "fit", 3, load_settings()
        )
    assert fitted.prompt.startswith("a cosy bakery")
    assert "calm uncluttered empty space in the lower half" in fitted.prompt
    (report,) = fitted.encoders
    assert report.tokens[0] <= 77 < report.tokens_before
    assert report.dropped
    assert all(p.priority == 5 for p in report.dropped)
    assert fitted.negative.prompt == "text, letters, watermark"
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "dropped 'extra detail number" in warnings[0].getMessage()


def test_the_example_prompts_fit_without_dropping_anything(tmp_path: Path) -> None:
    from backends.base import ArtRequest, CopyRequest
    from backends.builtin_text import BuiltinCopywriter
    from hyperlocal.briefs.loading import load_brief

    root = Path(__file__).resolve().parent.parent / "examples"
    brief = load_brief(root / "briefs" / "bakery.toml", allowed_dirs=[root])
    writer = BuiltinCopywriter()
    copy = writer.write_copy(CopyRequest(brief=brief, variant=1, variants=1))
    art = writer.direct_art(ArtRequest(brief=brief, copy=copy, variant=1))
    fitted = fit_prompt.fn(
        art, place_design(FORMATS["square"], "frosted").text_zone, "fit", 3, load_settings()
    )
    assert fitted.dropped == []


@settings(max_examples=150, deadline=None)
@given(phrase_lists)
def test_bisection_keeps_what_dropping_one_phrase_at_a_time_keeps(
    phrases: list[PromptPhrase],
) -> None:
    kept = list(phrases)
    while len(kept) > 1 and COUNTER.count(join_phrases(kept)) > CLIP_WINDOW:
        lowest = min(reversed(range(len(kept))), key=lambda i: kept[i].priority)
        kept.pop(lowest)
    fitted, _, shortened = fit_phrases(phrases, COUNTER)
    if not shortened:
        assert fitted == kept
