"""Small text helpers shared by the domain models and the builtin backends."""

from __future__ import annotations

import unicodedata

from slugify import slugify as transliterated_slug


def control_characters(value: str, allow_newlines: bool = False) -> list[str]:
    """Return the control characters in ``value`` (as ``U+XXXX``), newlines allowed if asked."""
    found = []
    for ch in value:
        if ch in "\n\t" and allow_newlines:
            continue
        if unicodedata.category(ch) in {"Cc", "Cs"} or ch in "\u2028\u2029":
            found.append(f"U+{ord(ch):04X}")
    return found


def slugify(value: str, max_length: int = 40) -> str:
    """Return a lowercase ASCII slug of ``value`` for file and folder names (never empty).

    Letters of every script are transliterated (python-slugify with text-unidecode):
    ``Piekarnia Źródło`` -> ``piekarnia-zrodlo``, ``Пекарня`` -> ``pekarnia``; what has no
    letters or digits at all (emoji) gives ``flyer``.
    """
    return transliterated_slug(value, max_length=max_length) or "flyer"


def clip_words(value: str, limit: int) -> str:
    """Return ``value`` shortened to at most ``limit`` characters at a word boundary."""
    if len(value) <= limit:
        return value
    cut = value[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:-–—")
    return (cut or value[: limit - 1]) + "…"
