"""Field types shared by the domain models: bounded one-line texts, hex colours, configs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    StringConstraints,
)

from hyperlocal.colors import normalise_hex
from hyperlocal.text import control_characters


def single_line(value: str) -> str:
    bad = control_characters(value)
    if bad:
        raise ValueError(f"contains control characters ({', '.join(bad[:3])}); remove them")
    return value


def multi_line(value: str) -> str:
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


HexColour = Annotated[str, AfterValidator(normalise_hex)]
Tone = Literal["friendly", "bold", "elegant", "playful", "calm"]

STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

#: Models that carry bytes: base64 in JSON, so the hash is the same in every process.
BINARY = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")
