"""Fitting image prompts into CLIP's 77-token window without cutting phrases."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hyperlocal.clip_tokens import CLIP_WINDOW, clip_counter, fit_phrases, join_phrases, lead_order
from hyperlocal.formats import FORMATS
from hyperlocal.models import ImagePrompt, PromptPhrase
from tasks.prompts import fit_prompt

ROLES = ["subject", "setting", "composition", "style", "lighting", "quality"]
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
)
phrase_lists = st.lists(phrase, min_size=1, max_size=25)


def test_a_known_prompt_counts_like_clip() -> None:
    # "a photo of a cat" is [start, 320, 1125, 539, 320, 2368, end] in CLIP's vocabulary.
    assert clip_counter().count("a photo of a cat") == 7
    assert clip_counter().count("A   Photo of a CAT") == 7


@settings(max_examples=150, deadline=None)
@given(phrase_lists)
def test_a_fitted_prompt_never_exceeds_the_window(phrases: list[PromptPhrase]) -> None:
    kept, _ = fit_phrases(phrases)
    assert clip_counter().count(join_phrases(kept)) <= CLIP_WINDOW


@settings(max_examples=150, deadline=None)
@given(phrase_lists)
def test_kept_phrases_are_whole_and_in_order(phrases: list[PromptPhrase]) -> None:
    kept, dropped = fit_phrases(phrases)
    whole = [p for p in kept if any(p is q for q in phrases)]
    positions = [next(i for i, q in enumerate(phrases) if q is p) for p in whole]
    assert positions == sorted(positions)
    shortened = [p for p in kept if not any(p is q for q in phrases)]
    # Only a lone phrase too long for the window on its own is shortened, at a
    # word boundary, and the long form is reported as dropped.
    assert len(shortened) <= 1
    for short in shortened:
        assert len(kept) == 1
        original = dropped[-1]
        assert original.text.startswith(short.text)
        assert original.text[len(short.text) :][:1] in ("", " ")


@settings(max_examples=150, deadline=None)
@given(phrase_lists)
def test_no_phrase_is_dropped_while_a_less_important_one_is_kept(
    phrases: list[PromptPhrase],
) -> None:
    kept, dropped = fit_phrases(phrases)
    if kept and dropped and len(phrases) > 1:
        assert min(p.priority for p in dropped) <= min(p.priority for p in kept)


@settings(max_examples=100, deadline=None)
@given(phrase_lists)
def test_fitting_a_fitted_prompt_changes_nothing(phrases: list[PromptPhrase]) -> None:
    kept, _ = fit_phrases(phrases)
    again, dropped_again = fit_phrases(kept)
    assert again == kept
    assert dropped_again == []


def test_subject_and_style_lead_the_prompt() -> None:
    phrases = [
        PromptPhrase(text="golden light", role="lighting", priority=40),
        PromptPhrase(text="oil painting", role="style", priority=80),
        PromptPhrase(text="a red bicycle", role="subject", priority=100),
    ]
    assert [p.role for p in lead_order(phrases)] == ["subject", "style", "lighting"]


def test_fit_prompt_keeps_the_text_zone_calm_and_reports_what_it_dropped() -> None:
    long_tail = [
        PromptPhrase(text=f"extra detail number {i} with many words", role="quality", priority=5)
        for i in range(20)
    ]
    prompt = ImagePrompt(
        phrases=[PromptPhrase(text="a cosy bakery", role="subject", priority=100), *long_tail],
        negative=[PromptPhrase(text="text, letters, watermark", role="quality", priority=100)],
    )
    fitted = fit_prompt.fn(prompt, FORMATS["letter"].text_zone)
    assert fitted.prompt.startswith("a cosy bakery")
    assert "calm uncluttered empty space in the lower half" in fitted.prompt
    assert fitted.token_count <= 77 < fitted.original_token_count
    assert fitted.dropped
    assert all(p.priority == 5 for p in fitted.dropped)
    assert fitted.negative_prompt == "text, letters, watermark"
