"""Small text helpers shared by the domain models and the builtin backends."""

from __future__ import annotations

import re
import unicodedata

_SLUG_STRIP = re.compile(r"[^a-z0-9]+")


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
    """Return a lowercase ASCII slug of ``value`` for file and folder names (never empty)."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    slug = _SLUG_STRIP.sub("-", ascii_text.lower()).strip("-")
    slug = slug[:max_length].rstrip("-")
    return slug or "flyer"


def clip_words(value: str, limit: int) -> str:
    """Return ``value`` shortened to at most ``limit`` characters at a word boundary."""
    if len(value) <= limit:
        return value
    cut = value[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:-–—")
    return (cut or value[: limit - 1]) + "…"
