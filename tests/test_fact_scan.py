"""The copy may only state the weekdays, dates, times, amounts and streets the brief backs."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperlocal.fact_scan import contradictions
from hyperlocal.models import Brief, CopyDraft, FlyerCopy

BRIEF = Brief(
    business="Rosie's Bakery",
    event="Sourdough class",
    date="Saturday 14 March 2026",
    time="10am-2pm",
    place="12 Mill Lane, Bristol",
    price="$5",
    details="Doors open 9:30am. Order online 24/7.",
)


def draft(**fields: object) -> CopyDraft:
    base: dict[str, object] = {"angle": "invitation", "headline": "Bake with us"}
    base["call_to_action"] = "Book now"
    return CopyDraft.model_validate(base | fields)


@pytest.mark.parametrize(
    ("fields", "caught"),
    [
        ({"headline": "See you this Sunday!"}, "headline names Sunday"),
        ({"subhead": "March 15 from 10am"}, "subhead gives the date 'March 15'"),
        ({"body_points": ["Starts 19:00"]}, "body_points[0] gives the time '19:00'"),
        ({"body_points": ["Only $10 a head"]}, "gives the amount '$10'"),
        ({"call_to_action": "Free entry for all"}, "call_to_action says 'Free entry'"),
        ({"fine_print": "Meet at 14 Mill Lane"}, "gives the address '14 Mill Lane'"),
        ({"fine_print": "Booking closes 15/3"}, "gives the date '15/3'"),
        ({"body_points": ["20% off today"]}, "gives the amount '20% off'"),
    ],
)
def test_a_fact_the_brief_does_not_back_is_caught_with_where_and_why(
    fields: dict[str, object], caught: str
) -> None:
    (problem,) = contradictions(draft(**fields), BRIEF)
    assert caught in problem
    assert "but the brief's" in problem


@pytest.mark.parametrize(
    "fields",
    [
        {"headline": "See you Saturday", "subhead": "Saturdays are for bread"},
        {"subhead": "March 14, 10 AM to 2 p.m."},
        {"body_points": ["Doors at 9.30am", "Just $5.00", "Order 24/7"]},
        {"fine_print": "14/3/2026, or 3/14 in the US, at 12 Mill Lane"},
        {"body_points": ["100% organic flour", "4 friends drive over together"]},
        {"headline": "Bread for 2, 3 or 4"},
    ],
)
def test_facts_the_brief_backs_and_ordinary_numbers_pass(fields: dict[str, object]) -> None:
    assert contradictions(draft(**fields), BRIEF) == []


def test_with_no_weekday_in_the_brief_the_copy_may_name_none() -> None:
    brief = BRIEF.model_copy(update={"date": "14 March"})
    (problem,) = contradictions(draft(headline="This Saturday!"), brief)
    assert "names Saturday" in problem


def test_a_full_date_gives_the_weekday_even_when_the_brief_does_not_name_it() -> None:
    brief = BRIEF.model_copy(update={"date": "2026-03-14"})
    assert contradictions(draft(headline="This Saturday!"), brief) == []
    assert contradictions(draft(headline="This Friday!"), brief)


def test_a_free_event_may_say_free_entry() -> None:
    brief = BRIEF.model_copy(update={"price": "Free"})
    assert contradictions(draft(headline="Free entry for everyone"), brief) == []


def test_the_fact_lines_are_placed_from_the_brief_verbatim() -> None:
    copy = FlyerCopy.from_draft(draft(), BRIEF)
    assert copy.when == "Saturday 14 March 2026 · 10am-2pm"
    assert (copy.where, copy.price) == (BRIEF.place, BRIEF.price)
    assert copy.draft() == draft()


DATE_FORMATS = ("%A %d %B %Y", "%B %d", "%d %B", "%Y-%m-%d", "%a %d %b")
TIME_FORMATS = ("%H:%M", "%I:%M%p", "%I%p")


@given(
    day=st.dates(min_value=datetime.date(2020, 1, 1), max_value=datetime.date(2035, 12, 31)),
    hour=st.integers(min_value=6, max_value=21),
    date_format=st.sampled_from(DATE_FORMATS),
    time_format=st.sampled_from(TIME_FORMATS),
)
def test_copy_restating_the_brief_passes_and_a_shifted_day_or_hour_is_caught(
    day: datetime.date, hour: int, date_format: str, time_format: str
) -> None:
    at = datetime.datetime.combine(day, datetime.time(hour))
    update = {"date": day.strftime(date_format), "time": at.strftime(time_format)}
    brief = BRIEF.model_copy(update=update)
    # The brief backs a weekday only when it names one or gives the year.
    weekday_known = any(code in date_format for code in ("%A", "%a", "%Y"))
    weekday = f"{day:%A}, " if weekday_known else ""
    said = f"{weekday}{day:%B} {day.day} at {at:%I:%M %p}"
    assert contradictions(draft(subhead=said), brief) == []
    later = at + datetime.timedelta(days=1, hours=1)
    wrong = f"{later:%A} {later:%B} {later.day} at {later:%I%p}"
    found = " ".join(contradictions(draft(subhead=wrong), brief))
    assert f"gives the time '{later:%I%p}'" in found
    assert f"names {later:%A}" in found
    assert "gives the date" in found


def test_emoji_and_symbols_in_written_copy_are_named_for_a_re_ask() -> None:
    from backends.chat_prompts import symbol_problems

    (problem,) = symbol_problems(draft(headline="Fresh bread 🍞 today ✨"))
    assert problem.startswith("headline contains '✨' (U+2728), '🍞' (U+1F35E)")
    assert "no emoji" in problem
    assert symbol_problems(draft(headline="Pain frais, Łódź — 12 €")) == []
