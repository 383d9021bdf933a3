"""Finds facts in written copy that the brief does not back: weekdays, dates, times, money.

The flyer's date, time, place and price are placed from the brief verbatim, but a
model still writes "See you this Sunday!" in a headline when the brief says Saturday.
``contradictions`` reads every text a copywriter wrote and names each weekday, date,
clock time, amount of money and street address that the brief's own words do not
back, so the variant can be asked again with the reason.

The rule is "backed by the brief", not "equal to the date field": a brief whose
details say "doors open at 6:30pm" allows 6:30pm anywhere in the copy, and one that
gives no weekday allows none (the model cannot know it). Clock times compare by
minute of the day (7pm == 19:00 == 7:00 p.m.), dates by month and day, money by
amount. The patterns read English month and weekday names; other languages' numeric
dates, times and amounts are still checked. Place names other than street addresses
("at the Town Hall") are not judged: telling a venue from any other capitalised
phrase needs more than patterns, and the printed place line is the brief's own.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable

from hyperlocal.models.brief import Brief
from hyperlocal.models.steps import CopyDraft

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTH = (
    r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_WEEKDAY = re.compile(r"\b(" + "|".join(WEEKDAYS) + r")s?\b", re.IGNORECASE)
# Only read in the brief's date field ("Sat 14 Mar"): "sun" and "wed" are words elsewhere.
_WEEKDAY_SHORT = re.compile(r"\b(mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)\b\.?", re.IGNORECASE)
# "January 06:00" is a month and a time, not January 6.
_MONTH_DAY = re.compile(
    rf"\b{_MONTH}[ \t]+{_DAY}\b(?![:.h]\d)(?:,?\s+(?P<year>\d{{4}}))?", re.IGNORECASE
)
_DAY_MONTH = re.compile(
    rf"\b{_DAY}(?:\s+of)?\s+{_MONTH}(?:,?\s+(?P<year>\d{{4}}))?(?![a-z])", re.IGNORECASE
)
_ISO_DATE = re.compile(r"\b(?P<year>\d{4})-(?P<month>[01]?\d)-(?P<day>[0-3]?\d)\b")
# 14/3, 14/3/2026 and 14.3.2026; a two-part "7.30" is a time or an amount, not a date.
_NUMERIC_DATE = re.compile(
    r"(?<![\d.:/$€£¥])(?P<a>[0-3]?\d)(?:/(?P<b>[0-3]?\d)(?:/(?P<year>\d{4}|\d{2}))?"
    r"|\.(?P<b2>[01]?\d)\.(?P<year2>\d{4}))(?![\d:/%]|[.,]\d)"
)
_CLOCK_12 = re.compile(
    r"(?<![\d.:])(?P<hour>1[0-2]|0?[1-9])(?:[:.](?P<minute>[0-5]\d))?\s*(?P<half>[ap])\.?\s?m\b\.?",
    re.IGNORECASE,
)
_CLOCK_24 = re.compile(r"(?<![\d.:])(?P<hour>[01]?\d|2[0-3])(?:[:h])(?P<minute>[0-5]\d)\b")
_NAMED_TIME = {"noon": 12 * 60, "midday": 12 * 60, "midnight": 0}
_NAMED_TIME_RE = re.compile(r"\b(noon|midday|midnight)\b", re.IGNORECASE)
_BARE_HOUR = re.compile(r"(?<![\d.:/$€£¥])\b(1[0-2]|0?[1-9])\b(?![\d.:/%])")
_CURRENCY = r"(?:[$€£¥₹]|usd|eur|gbp|chf|dollars?|euros?|pounds?|bucks)"
_AMOUNT = r"(?P<amount>\d{1,6}(?:[.,]\d{1,2})?)"
_MONEY = re.compile(
    rf"(?:{_CURRENCY}\s?{_AMOUNT.replace('amount', 'a1')}"
    rf"|{_AMOUNT.replace('amount', 'a2')}\s?{_CURRENCY}(?![a-z])"
    rf"|{_AMOUNT.replace('amount', 'a3')}\s?%\s?(?:off|discount))",
    re.IGNORECASE,
)
_FREE = re.compile(
    r"\bfree\s+(?:entry|admission|entrance|of\s+charge|for\s+(?:all|everyone))\b"
    r"|\b(?:entry|admission|entrance)\s+(?:is\s+)?free\b",
    re.IGNORECASE,
)
_STREET_WORDS = (
    "street|st|road|rd|avenue|ave|lane|ln|boulevard|blvd|drive|dr|way|place|pl|square|sq|"
    "court|ct|terrace|row|close|crescent|parkway|highway|hwy"
)
# Case matters for the name ("12 Mill Lane", not "4 friends drive"), not for the street word.
_STREET = re.compile(
    rf"\b\d{{1,5}}[a-z]?\s+(?:[A-Z][\w'’-]*\.?\s+){{1,3}}(?i:{_STREET_WORDS})\b\.?"
)
_NUMBER = re.compile(r"\d{1,6}(?:[.,]\d{1,2})?")


def _month_number(name: str) -> int:
    return next(i for i, month in enumerate(MONTHS, 1) if month.startswith(name.lower()[:3]))


def _valid(month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= 31


def _dates(text: str) -> list[tuple[str, set[tuple[int, int]], int | None]]:
    """Return each date mentioned: its words, the (month, day) it may mean, and its year."""
    found: list[tuple[str, set[tuple[int, int]], int | None]] = []
    taken: list[tuple[int, int]] = []

    def add(match: re.Match[str], meanings: set[tuple[int, int]], year: str | None) -> None:
        if any(start < match.end() and match.start() < end for start, end in taken):
            return
        meanings = {(m, d) for m, d in meanings if _valid(m, d)}
        if meanings:
            taken.append(match.span())
            found.append((match.group(0).strip(), meanings, int(year) if year else None))

    for pattern in (_MONTH_DAY, _DAY_MONTH):
        for match in pattern.finditer(text):
            month = _month_number(match["month"])
            add(match, {(month, int(match["day"]))}, match["year"])
    for match in _ISO_DATE.finditer(text):
        add(match, {(int(match["month"]), int(match["day"]))}, match["year"])
    for match in _NUMERIC_DATE.finditer(text):
        if match.group(0) == "24/7":
            continue  # "open 24/7"
        a, b = int(match["a"]), int(match["b"] or match["b2"])
        year = match["year"] or match["year2"]
        # 3/4 is 3 April in most of the world and March 4 in the US: either reading is backed.
        meanings = {(b, a)} if match["b2"] else {(b, a), (a, b)}
        add(match, meanings, year if year and len(year) == 4 else None)
    return found


def _clock_times(text: str) -> list[tuple[str, int]]:
    """Return each clock time mentioned and its minute of the day."""
    found: list[tuple[str, int]] = []
    for match in _CLOCK_12.finditer(text):
        hour = int(match["hour"]) % 12 + (12 if match["half"].lower() == "p" else 0)
        found.append((match.group(0).strip(), hour * 60 + int(match["minute"] or 0)))
    for match in _CLOCK_24.finditer(text):
        after = text[match.end() : match.end() + 5].lower().lstrip()
        if after.startswith(("am", "pm", "a.m", "p.m")):
            continue  # read above as a 12-hour time
        found.append((match.group(0), int(match["hour"]) * 60 + int(match["minute"])))
    for match in _NAMED_TIME_RE.finditer(text):
        found.append((match.group(0), _NAMED_TIME[match.group(0).lower()]))
    return found


def _amount(text: str) -> float:
    return float(text.replace(",", "."))


def _money(text: str) -> list[tuple[str, float]]:
    """Return each amount of money (or percentage) mentioned, with its value."""
    found = []
    for match in _MONEY.finditer(text):
        value = match["a1"] or match["a2"] or match["a3"]
        found.append((match.group(0).strip(), _amount(value)))
    return found


def _brief_texts(brief: Brief) -> list[str]:
    texts = [brief.business, brief.event, brief.details, brief.place, brief.audience]
    texts += [brief.date or "", brief.time or "", brief.price or "", brief.call_to_action or ""]
    return [text for text in texts if text]


def _weekday_of(brief: Brief) -> set[str]:
    """Return the weekday(s) the brief's date falls on, when it gives a full date."""
    if not brief.date:
        return set()
    found = set()
    for _words, meanings, year in _dates(brief.date):
        if year is None or len(meanings) != 1:
            continue
        ((month, day),) = meanings
        try:
            found.add(WEEKDAYS[datetime.date(year, month, day).weekday()])
        except ValueError:
            continue
    return found


class _Backing:
    """What the brief's own words allow the copy to say."""

    def __init__(self, brief: Brief) -> None:
        # Field by field: a date at the end of one field and a number at the start of
        # the next must not read as one date.
        texts = _brief_texts(brief)
        self.weekdays = {m.group(1).lower() for t in texts for m in _WEEKDAY.finditer(t)}
        self.weekdays |= _weekday_of(brief)
        for short in _WEEKDAY_SHORT.findall(brief.date or ""):
            self.weekdays.add(next(day for day in WEEKDAYS if day.startswith(short.lower()[:3])))
        self.dates = {meaning for t in texts for _w, ms, _y in _dates(t) for meaning in ms}
        self.times = {minute for t in texts for _w, minute in _clock_times(t)}
        # "10-2" in the time field: bare hours there mean either half of the day.
        for hour in _BARE_HOUR.findall(brief.time or ""):
            self.times |= {int(hour) % 12 * 60, (int(hour) % 12 + 12) * 60}
        self.amounts = {value for t in texts for _w, value in _money(t)}
        # The price field may give a bare number ("5 at the door"): it is money there.
        self.amounts |= {_amount(n) for n in _NUMBER.findall(brief.price or "")}
        self.free = any(re.search(r"\bfree\b", t, re.IGNORECASE) for t in texts)
        self.free = self.free or not brief.price
        self.streets = {_squash(m.group(0)) for t in texts for m in _STREET.finditer(t)}
        self.date_words = brief.date or "no date"
        self.time_words = brief.time or "no time"
        self.price_words = brief.price or "no price"
        self.place_words = brief.place


def _squash(text: str) -> str:
    return " ".join(re.sub(r"[.,]", " ", text).lower().split())


def _unbacked(draft_runs: dict[str, str], backing: _Backing) -> Iterable[str]:
    date, time, price = backing.date_words, backing.time_words, backing.price_words
    for where, text in draft_runs.items():
        for match in _WEEKDAY.finditer(text):
            weekday = match.group(1).lower()
            if weekday not in backing.weekdays:
                yield (
                    f"{where} names {match.group(1).capitalize()}, but the brief's date is {date!r}"
                )
        for words, meanings, _year in _dates(text):
            if not meanings & backing.dates:
                yield f"{where} gives the date {words!r}, but the brief's date is {date!r}"
        for words, minute in _clock_times(text):
            if minute not in backing.times:
                yield f"{where} gives the time {words!r}, but the brief's time is {time!r}"
        for words, value in _money(text):
            if value not in backing.amounts:
                yield f"{where} gives the amount {words!r}, but the brief's price is {price!r}"
        if not backing.free:
            for match in _FREE.finditer(text):
                yield f"{where} says {match.group(0)!r}, but the brief's price is {price!r}"
        for match in _STREET.finditer(text):
            if _squash(match.group(0)) not in backing.streets:
                yield (
                    f"{where} gives the address {match.group(0).strip()!r}, but the brief's "
                    f"place is {backing.place_words!r}"
                )


def contradictions(draft: CopyDraft, brief: Brief) -> list[str]:
    """Return each weekday, date, time, amount or street in ``draft`` that the brief does not back.

    Every problem is one short sentence naming the field, the words found and the
    brief's fact ("headline names Sunday, but the brief's date is 'Saturday 14 March'"),
    ready to send back to the model. Empty when the copy keeps to the brief. Never raises.
    """
    return list(dict.fromkeys(_unbacked(draft.written_runs(), _Backing(brief))))
