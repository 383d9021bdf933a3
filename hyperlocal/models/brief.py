"""The brief: who, what, when, where, the offer, the call to action and the brand."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import langcodes
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    field_validator,
)

from hyperlocal.models.fields import (
    BLANK_IS_NONE,
    FORM_BLANK,
    STRICT,
    HexColour,
    Line80,
    Line120,
    Line120_0,
    OptionalLine40,
    OptionalLine60,
    Tone,
    multi_line,
    refuse_bidi_controls,
    single_line,
    text_schema,
)

#: The brand colours a brief without any gets: primary, accent, light.
DEFAULT_COLOURS = ("#1F3A5F", "#F2A541", "#FDF6EC")
#: Longer than any real path (Linux's PATH_MAX is 4096); a longer one is a mistake.
MAX_LOGO_PATH = 1000
#: The link check in the form (JSON schema, ECMAScript regex: no flags, so case by hand);
#: ``_http_url`` checks the rest in Python.
URL_PATTERN = r"^$|^[Hh][Tt][Tt][Pp][Ss]?://\S+$"
#: A BCP 47 tag's shape; ``langcodes`` then checks it against the IANA registry.
LANGUAGE_PATTERN = r"^$|^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"

Url = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None,
    BLANK_IS_NONE,
    text_schema(300, URL_PATTERN),
]
LanguageTag = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=35)] | None,
    BLANK_IS_NONE,
    text_schema(35, LANGUAGE_PATTERN),
]
LogoPath = Annotated[Path | None, BLANK_IS_NONE, text_schema(MAX_LOGO_PATH)]


def _refuse_bidi(value: Any) -> Any:
    """Return ``value``; raises ``ValueError`` if a text in it holds a bidirectional control."""
    if isinstance(value, str | Path):
        refuse_bidi_controls(str(value))
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_bidi(item)
    return value


class BrandKit(BaseModel):
    """The brand's colours, fonts and logo."""

    model_config = STRICT

    # A plain default (pydantic copies it per brief), not a factory: the JSON schema, and
    # so the Prefect form, shows it only then.
    colors: list[HexColour] = Field(
        default=list(DEFAULT_COLOURS),
        min_length=1,
        max_length=5,
        description="Brand colours as hex (#RRGGBB): primary first, then accent, then light.",
    )
    # Optional texts: None when not given; the form shows an empty box (FORM_BLANK).
    logo: LogoPath = Field(
        default=None,
        json_schema_extra=FORM_BLANK,
        description="Logo file (PNG or SVG), relative to the brief's folder or an asset folder.",
    )
    heading_font: OptionalLine60 = Field(
        default=None,
        json_schema_extra=FORM_BLANK,
        description="Font family for headlines; must be installed.",
    )
    body_font: OptionalLine60 = Field(
        default=None,
        json_schema_extra=FORM_BLANK,
        description="Font family for body text; must be installed.",
    )

    @field_validator("*")
    @classmethod
    def _no_bidi_controls(cls, value: Any) -> Any:
        return _refuse_bidi(value)

    @field_validator("logo")
    @classmethod
    def _logo_suffix(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if len(str(value)) > MAX_LOGO_PATH:
            raise ValueError(f"a path of at most {MAX_LOGO_PATH} characters is expected")
        if value.suffix.lower() not in {".png", ".svg", ".jpg", ".jpeg"}:
            raise ValueError(f"logo {value.name[:80]!r} must be a PNG, SVG or JPEG file")
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
    # Optional texts: None when not given; the form shows an empty box (FORM_BLANK).
    date: OptionalLine60 = Field(
        default=None, json_schema_extra=FORM_BLANK, description="Date, as it should be printed."
    )
    time: OptionalLine40 = Field(
        default=None, json_schema_extra=FORM_BLANK, description="Time, as it should be printed."
    )
    place: Line120 = Field(description="Where, as it should be printed.")
    price: OptionalLine40 = Field(
        default=None, json_schema_extra=FORM_BLANK, description="Price or offer, as printed."
    )
    audience: Line120_0 = Field(default="", description="Who the flyer is for.")
    tone: Tone = Field(default="friendly", description="The voice of the copy.")
    call_to_action: OptionalLine60 = Field(
        default=None,
        json_schema_extra=FORM_BLANK,
        description="What readers should do, e.g. 'Book a table'.",
    )
    url: Url = Field(
        default=None,
        json_schema_extra=FORM_BLANK,
        description="An http(s) link; becomes a QR code on the flyer.",
    )
    language: LanguageTag = Field(
        default=None,
        json_schema_extra=FORM_BLANK,
        description="The flyer's language as a BCP 47 tag (en, pl, he, ar-EG): the copy is "
        "written in it, and it sets the text direction and typesetting rules.",
    )
    brand: BrandKit = Field(
        default_factory=BrandKit,
        # A factory leaves no default in the schema: the form would show no colours.
        json_schema_extra={"default": {"colors": list(DEFAULT_COLOURS)}},
        description="Colours, fonts and logo.",
    )

    @field_validator("*")
    @classmethod
    def _no_bidi_controls(cls, value: Any) -> Any:
        return _refuse_bidi(value)

    @field_validator("language")
    @classmethod
    def _language_tag(cls, value: str | None) -> str | None:
        if value is None:
            return None
        expected = "must be a language tag such as en, pl, he, ar-EG or zh-Hant-TW"
        # The IANA language subtag registry (langcodes carries a copy): a tag of the right
        # shape with an unknown language, script or region (xx-INVALID) is refused too.
        if not re.fullmatch(LANGUAGE_PATTERN, value) or not langcodes.tag_is_valid(value):
            raise ValueError(f"{expected} ({value!r} is not in the language registry)")
        language = langcodes.Language.get(value)
        if language.language in (None, "und"):
            raise ValueError(f"{expected} ({value!r} names no language)")
        # Registry case and preferred forms: ar-eg -> ar-EG, iw -> he.
        return langcodes.standardize_tag(value)

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
