"""Field types shared by the domain models: bounded one-line texts, hex colours, configs."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    WithJsonSchema,
)

from hyperlocal.colors import normalise_hex
from hyperlocal.text import control_characters

#: Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): each
#: opens a state that reorders the text after it, across field boundaries when unclosed (a
#: date ending in U+202E printed its time backwards). The layout isolates every line itself,
#: so a brief never needs them. The marks U+200E, U+200F and U+061C stay allowed: each is one
#: invisible strong letter that reorders nothing a Hebrew or Arabic word could not, and the
#: keyboards and editors of those scripts insert them.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def refuse_bidi_controls(value: str) -> str:
    """Return ``value``; raises ``ValueError`` naming its first bidirectional control."""
    for ch in value:
        if ch in BIDI_CONTROLS:
            raise ValueError(
                f"contains the bidirectional control U+{ord(ch):04X} "
                f"({unicodedata.name(ch)}): remove it"
            )
    return value


def single_line(value: str) -> str:
    """Return ``value``; raises ``ValueError`` if it holds a control character or line break."""
    bad = control_characters(value)
    if bad:
        raise ValueError(f"contains control characters ({', '.join(bad[:3])}); remove them")
    return value


def multi_line(value: str) -> str:
    """Return ``value``; raises ``ValueError`` if it holds a control character (newlines pass)."""
    bad = control_characters(value, allow_newlines=True)
    if bad:
        raise ValueError(f"contains control characters ({', '.join(bad[:3])}); remove them")
    return value


def _line(max_length: int, min_length: int = 1) -> tuple[StringConstraints, AfterValidator]:
    return (
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(single_line),
    )


# One-line text fields, named by their length limit ("Line0_110" may be empty).
Line40 = Annotated[str, *_line(40)]
Line50_0 = Annotated[str, *_line(50, 0)]
Line60 = Annotated[str, *_line(60)]
Line70 = Annotated[str, *_line(70)]
Line80 = Annotated[str, *_line(80)]
Line100 = Annotated[str, *_line(100)]
Line110_0 = Annotated[str, *_line(110, 0)]
Line120 = Annotated[str, *_line(120)]
Line120_0 = Annotated[str, *_line(120, 0)]
Line130 = Annotated[str, *_line(130)]
Line140_0 = Annotated[str, *_line(140, 0)]
Line200_0 = Annotated[str, *_line(200, 0)]


def blank_is_none(value: Any) -> Any:
    """Return ``None`` for ``None`` or a blank text (not given), else ``value`` unchanged."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def text_schema(max_length: int, pattern: str | None = None) -> WithJsonSchema:
    """Return the JSON schema of an optional text: a plain string, bounded (and patterned).

    Without it an optional text's schema is ``anyOf [string, null]``, which the Prefect
    form shows as a None/str toggle and, past its limit, as a wall of errors per branch.
    """
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length}
    if pattern is not None:
        schema["pattern"] = pattern
    return WithJsonSchema(schema)


#: ``""`` and ``None`` both mean "not given" and validate to ``None``, so code reads
#: ``is None``: the form sends ``""`` for a box left empty.
BLANK_IS_NONE = BeforeValidator(blank_is_none)
#: ``json_schema_extra`` of an optional text: the schema's default is an empty box, while
#: the Python default stays ``None`` (so ``exclude_defaults`` still leaves it out).
FORM_BLANK: dict[str, Any] = {"default": ""}

# Optional one-line texts: None in Python, a plain bounded string in the JSON schema.
OptionalLine40 = Annotated[Line40 | None, BLANK_IS_NONE, text_schema(40)]
OptionalLine60 = Annotated[Line60 | None, BLANK_IS_NONE, text_schema(60)]


HexColour = Annotated[str, AfterValidator(normalise_hex)]
Tone = Literal["friendly", "bold", "elegant", "playful", "calm"]

STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

#: Models that carry bytes: base64 in JSON, so the hash is the same in every process.
BINARY = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")
