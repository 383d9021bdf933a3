"""The brief: who, what, when, where, the offer, the call to action and the brand."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    field_validator,
)

from hyperlocal.models.fields import (
    STRICT,
    HexColour,
    Line40,
    Line60,
    Line80,
    Line120,
    Line120_0,
    Tone,
    multi_line,
    single_line,
)


class BrandKit(BaseModel):
    """The brand's colours, fonts and logo."""

    model_config = STRICT

    colors: list[HexColour] = Field(
        default_factory=lambda: ["#1F3A5F", "#F2A541", "#FDF6EC"],
        min_length=1,
        max_length=5,
        description="Brand colours as hex (#RRGGBB): primary first, then accent, then light.",
    )
    logo: Path | None = Field(
        default=None,
        description="Logo file (PNG or SVG), relative to the brief's folder or an asset folder.",
    )
    heading_font: Line60 | None = Field(
        default=None, description="Font family for headlines; must be installed."
    )
    body_font: Line60 | None = Field(
        default=None, description="Font family for body text; must be installed."
    )

    @field_validator("logo")
    @classmethod
    def _logo_suffix(cls, value: Path | None) -> Path | None:
        if value is not None and value.suffix.lower() not in {".png", ".svg", ".jpg", ".jpeg"}:
            raise ValueError(f"logo {value.name!r} must be a PNG, SVG or JPEG file")
        return value


class Brief(BaseModel):
    """What the flyer is about: who, what, when, where, the offer and the call to action.

    Facts (date, time, place, price) are typeset exactly as given here.
    """

    model_config = STRICT

    business: Line80 = Field(description="Business or organiser name.")
    event: Line120 = Field(description="The event or offer, in a few words.")
    details: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=500), AfterValidator(multi_line)
    ] = Field(default="", description="What happens, what to expect; helps copy and picture.")
    date: Line60 | None = Field(default=None, description="Date, as it should be printed.")
    time: Line40 | None = Field(default=None, description="Time, as it should be printed.")
    place: Line120 = Field(description="Where, as it should be printed.")
    price: Line40 | None = Field(default=None, description="Price or offer, as printed.")
    audience: Line120_0 = Field(default="", description="Who the flyer is for.")
    tone: Tone = Field(default="friendly", description="The voice of the copy.")
    call_to_action: Line60 | None = Field(
        default=None, description="What readers should do, e.g. 'Book a table'."
    )
    url: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = Field(
        default=None, description="An http(s) link; becomes a QR code on the flyer."
    )
    language: Annotated[str, StringConstraints(strip_whitespace=True, max_length=35)] | None = (
        Field(
            default=None,
            description="The flyer's language as a BCP 47 tag (en, pl, he, ar-EG): the copy is "
            "written in it, and it sets the text direction and typesetting rules.",
        )
    )
    brand: BrandKit = Field(default_factory=BrandKit, description="Colours, fonts and logo.")

    @field_validator("language")
    @classmethod
    def _language_tag(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", value):
            raise ValueError("must be a language tag such as en, pl, he or ar-EG")
        primary, *rest = value.split("-")
        # BCP 47 case conventions: language lower, region upper, script title.
        tags = [primary.lower()]
        for tag in rest:
            tags.append(
                tag.upper() if len(tag) == 2 else tag.title() if len(tag) == 4 else tag.lower()
            )
        return "-".join(tags)

    def text_language(self) -> tuple[str, str | None] | None:
        """Return the language's ISO 639 code and region (``("ar", "EG")``), or ``None``."""
        if self.language is None:
            return None
        primary, *rest = self.language.split("-")
        region = next((t for t in rest if len(t) == 2 and t.isalpha()), None)
        return primary, region

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not re.match(r"^https?://[^\s/$.?#][^\s]*$", value, re.IGNORECASE):
            raise ValueError("must be an http:// or https:// link with no spaces")
        single_line(value)
        try:
            # The QR code and the printed label parse it: an unbalanced [ or ] cannot be.
            parts = urlsplit(value)
            _ = parts.port
        except ValueError:
            raise ValueError("must be a well-formed http:// or https:// link") from None
        if not parts.hostname:
            raise ValueError("must be an http:// or https:// link with a host name")
        return value

    def facts(self) -> dict[str, str]:
        """Return the facts that must be printed exactly as given (date, time, place, price)."""
        found = {"date": self.date, "time": self.time, "place": self.place, "price": self.price}
        return {name: value for name, value in found.items() if value}
