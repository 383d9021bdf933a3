"""Which way a flyer reads, and how a line that runs the other way keeps its own order.

A Hebrew or Arabic flyer is mirrored by the template (``text(dir: rtl)``); an
English address on it is passed as a Unicode first-strong isolate so that
"14 Mill Lane." does not come out as ".Mill Lane 14".
"""

from __future__ import annotations

import unicodedata

from hyperlocal.models import Brief

_FIRST_STRONG_ISOLATE, _POP_ISOLATE = "\u2068", "\u2069"
#: Languages written right to left (ISO 639 codes).
RTL_LANGUAGES = frozenset(
    {"ar", "arc", "ckb", "dv", "fa", "he", "iw", "ks", "ps", "sd", "syr", "ug", "ur", "yi"}
)


def flyer_direction(brief: Brief, headline: str) -> str:
    """Return which way the flyer reads: from the brief's language when it has one,
    else from the headline's first letter with a direction (``"rtl"`` or ``"ltr"``)."""
    language = brief.text_language()
    if language is not None:
        return "rtl" if language[0] in RTL_LANGUAGES else "ltr"
    return first_strong_direction(headline) or "ltr"


def first_strong_direction(text: str) -> str | None:
    """Return ``"rtl"`` or ``"ltr"`` after the first letter with a direction in ``text``
    (Hebrew and Arabic letters are right to left), ``None`` when it has none (digits)."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return "rtl"
        if kind == "L":
            return "ltr"
    return None


def isolated(text: str, direction: str) -> str:
    """Return ``text`` as a bidi isolate when it runs the other way than the flyer.

    An English line on an Arabic flyer keeps its own order ("14 Mill Lane.", not
    ".Mill Lane 14") and is still aligned with the rest; text that runs the
    flyer's way is returned unchanged.
    """
    own = first_strong_direction(text)
    if own is None or own == direction:
        return text
    return _FIRST_STRONG_ISOLATE + text + _POP_ISOLATE
