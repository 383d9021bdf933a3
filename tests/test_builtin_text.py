"""The builtin copywriter: different variants, exact facts, valid copy for any brief."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.base import ArtRequest, CopyRequest
from backends.builtin_text import BuiltinCopywriter
from hyperlocal.models import Brief, fact_problems
from hyperlocal.prompts.clip_tokens import clip_counter

BRIEF = Brief(
    business="Rosie's Bakery",
    event="Sourdough for Beginners",
    details="Learn to shape a loaf. Take home a starter; coffee included.",
    date="Saturday 14 March",
    time="10am – 1pm",
    place="12 Market Street, Hebden Bridge",
    price="£35",
    audience="curious home bakers",
)
WRITER = BuiltinCopywriter()


def test_variants_are_genuinely_different() -> None:
    copies = [
        WRITER.write_copy(CopyRequest(brief=BRIEF, variant=v, variants=4)) for v in (1, 2, 3, 4)
    ]
    assert len({c.angle for c in copies}) == 4
    assert len({c.headline for c in copies}) == 4
    assert len({tuple(c.body_points) for c in copies}) > 1


def test_facts_are_copied_exactly() -> None:
    copy = WRITER.write_copy(CopyRequest(brief=BRIEF, variant=2, variants=2))
    assert fact_problems(copy, BRIEF) == []
    assert copy.when == "Saturday 14 March · 10am – 1pm"
    assert copy.price == "£35"


def test_the_same_request_gives_the_same_copy() -> None:
    request = CopyRequest(brief=BRIEF, variant=3, variants=4)
    assert WRITER.write_copy(request) == WRITER.write_copy(request)


def test_the_brief_call_to_action_is_used() -> None:
    brief = BRIEF.model_copy(update={"call_to_action": "Book a bench"})
    assert WRITER.write_copy(CopyRequest(brief=brief, variant=1, variants=1)).call_to_action == (
        "Book a bench"
    )


def test_art_direction_describes_the_subject_with_no_lettering() -> None:
    copy = WRITER.write_copy(CopyRequest(brief=BRIEF, variant=1, variants=1))
    prompt = WRITER.direct_art(ArtRequest(brief=BRIEF, copy=copy, variant=1))
    subject = next(p for p in prompt.phrases if p.role == "subject")
    assert "sourdough" in subject.text
    assert subject.priority == max(p.priority for p in prompt.phrases)
    assert "text" in prompt.negative_text()
    assert "letters" in prompt.negative_text()


# Everything a brief accepts: no control characters, newlines and tabs only in details.
printable = st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp"])


def line(max_size: int) -> st.SearchStrategy[str]:
    return st.text(printable, min_size=1, max_size=max_size).filter(str.strip)


briefs = st.builds(
    Brief,
    business=line(80),
    event=line(120),
    details=st.text(printable | st.sampled_from("\n\t"), max_size=500),
    date=st.none() | line(60),
    time=st.none() | line(40),
    place=line(120),
    price=st.none() | line(40),
    audience=st.text(printable, max_size=120),
    tone=st.sampled_from(["friendly", "bold", "elegant", "playful", "calm"]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(briefs, st.integers(1, 8))
def test_any_valid_brief_gets_valid_fact_exact_copy(brief: Brief, variant: int) -> None:
    copy = WRITER.write_copy(CopyRequest(brief=brief, variant=variant, variants=8))
    assert fact_problems(copy, brief) == []
    prompt = WRITER.direct_art(ArtRequest(brief=brief, copy=copy, variant=variant))
    assert prompt.phrases[0].role == "subject"
    assert clip_counter().count(prompt.text()) > 2
