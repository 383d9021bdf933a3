"""Domain models: what flows between the steps, validated at every boundary.

A ``Brief`` goes in; each step turns one model into the next (``FlyerCopy``,
``ImagePrompt``, ``FittedPrompt``, ``GeneratedImage``, ``QCReport``,
``RenderedFlyer``); ``RunManifest`` records the whole run. Models are frozen so
they hash the same way in every process (they are part of cache keys).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from hyperlocal.text import control_characters

_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def _hex_colour(value: str) -> str:
    match = _HEX.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a hex colour such as #1F3A5F")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return "#" + digits.upper()


def _single_line(value: str) -> str:
    bad = control_characters(value)
    if bad:
        raise ValueError(f"contains control characters ({', '.join(bad[:3])}); remove them")
    return value


def _multi_line(value: str) -> str:
    bad = control_characters(value, allow_newlines=True)
    if bad:
        raise ValueError(f"contains control characters ({', '.join(bad[:3])}); remove them")
    return value


def _line(max_length: int, min_length: int = 1) -> tuple[StringConstraints, AfterValidator]:
    return (
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(_single_line),
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


HexColour = Annotated[str, AfterValidator(_hex_colour)]
Tone = Literal["friendly", "bold", "elegant", "playful", "calm"]

_STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class BrandKit(BaseModel):
    """The brand's colours, fonts and logo."""

    model_config = _STRICT

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

    model_config = _STRICT

    business: Line80 = Field(description="Business or organiser name.")
    event: Line120 = Field(description="The event or offer, in a few words.")
    details: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=500), AfterValidator(_multi_line)
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
        _single_line(value)
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


class BackendIdentity(BaseModel):
    """What produced an output: part of every cache key and of the manifest.

    Holds the parameters that change the output and nothing else: never a URL's
    credentials, a key or a client object.
    """

    model_config = ConfigDict(frozen=True)

    role: Literal["text", "image", "vision"]
    kind: str
    model: str
    revision: str = ""
    params: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """A short human-readable name, e.g. ``builtin:template-copywriter``."""
        return f"{self.kind}:{self.model}"


class FlyerCopy(BaseModel):
    """The words of one variant."""

    model_config = _STRICT

    angle: Line40 = Field(description="The creative angle of this variant.")
    headline: Line70 = Field(description="The big line.")
    subhead: Line140_0 = Field(default="", description="One line under the headline.")
    body_points: list[Line100] = Field(
        default_factory=list, max_length=4, description="Up to four short points."
    )
    when: Line110_0 = Field(default="", description="Date and time, exactly as the brief.")
    where: Line130 = Field(description="Place, exactly as the brief.")
    price: Line50_0 = Field(default="", description="Price or offer, exactly as the brief.")
    call_to_action: Line60 = Field(description="What to do now.")
    fine_print: Line200_0 = Field(default="", description="Small print.")

    def text_runs(self) -> list[str]:
        """Return every piece of text this copy puts on the flyer."""
        runs = [self.headline, self.subhead, *self.body_points, self.when, self.where, self.price]
        return [run for run in [*runs, self.call_to_action, self.fine_print] if run]


def fact_problems(copy: FlyerCopy, brief: Brief) -> list[str]:
    """Return why ``copy`` misstates the brief's facts (empty when every fact is kept exactly)."""
    problems = []
    if brief.date and brief.date not in copy.when:
        problems.append(f"'when' must contain the date exactly as {brief.date!r}")
    if brief.time and brief.time not in copy.when:
        problems.append(f"'when' must contain the time exactly as {brief.time!r}")
    if brief.place not in copy.where:
        problems.append(f"'where' must contain the place exactly as {brief.place!r}")
    if brief.price and brief.price not in copy.price:
        problems.append(f"'price' must contain the price exactly as {brief.price!r}")
    return problems


PhraseRole = Literal["subject", "setting", "composition", "style", "lighting", "quality"]


class PromptPhrase(BaseModel):
    """One phrase of an image prompt, with what it is for and how much it matters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    role: PhraseRole
    priority: int = Field(ge=0, le=100, description="Higher is kept longer when fitting.")
    weight: float = Field(default=1.0, ge=0.1, le=2.0, description="Emphasis (1.0 = none).")


class ImagePrompt(BaseModel):
    """Art direction for one picture: phrases to paint and phrases to avoid."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phrases: list[PromptPhrase] = Field(min_length=1)
    negative: list[PromptPhrase] = Field(default_factory=list)

    def text(self) -> str:
        """Return the prompt as one comma-separated string."""
        return ", ".join(p.text for p in self.phrases)

    def negative_text(self) -> str:
        """Return the negative prompt as one comma-separated string."""
        return ", ".join(p.text for p in self.negative)


WeightSyntax = Literal["none", "a1111", "compel"]
ChunkSyntax = Literal["none", "a1111", "compel"]
LongPrompts = Literal["fit", "chunk"]


class PromptSyntax(BaseModel):
    """How an image backend takes its prompt: encoders, emphasis and long-prompt syntax."""

    model_config = ConfigDict(frozen=True)

    encoders: Literal[1, 2] = Field(
        default=1, description="2 when the backend takes a second prompt (SDXL prompt_2)."
    )
    weights: WeightSyntax = Field(
        default="none", description="Emphasis syntax: a1111 (text:1.2), compel (text)1.2."
    )
    chunks: ChunkSyntax = Field(
        default="none",
        description="How prompts over 75 tokens are encoded: a1111 BREAK, compel .and().",
    )


class EncoderFit(BaseModel):
    """What fitting did for one text encoder (or the negative prompt)."""

    model_config = ConfigDict(frozen=True)

    encoder: str = Field(description="Which prompt: prompt, prompt_2 or negative_prompt.")
    counter: str = Field(description="The tokenizer that counted.")
    prompt: str = Field(description="The prompt as the backend receives it.")
    tokens_before: int = Field(description="Tokens of all phrases as one sequence.")
    tokens: list[int] = Field(description="Tokens of each chunk sent (one in fit mode).")
    dropped: list[PromptPhrase] = Field(default_factory=list)
    shortened: list[PromptPhrase] = Field(
        default_factory=list, description="Phrases cut at a word boundary (their long form)."
    )


class FittedPrompt(BaseModel):
    """An image prompt fitted to CLIP's 77-token window, per encoder, with what was dropped."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    negative_prompt: str
    prompt_2: str | None = None
    negative_prompt_2: str | None = None
    mode: LongPrompts = "fit"
    syntax: PromptSyntax = Field(default_factory=PromptSyntax)
    limit: int = 77
    encoders: list[EncoderFit]
    negative: EncoderFit
    zone: str = Field(description="The format's text zone the prompt keeps calm.")

    @property
    def token_count(self) -> int:
        """The most tokens any one window of any encoder takes."""
        return max(max(e.tokens, default=0) for e in [*self.encoders, self.negative])

    @property
    def dropped(self) -> list[PromptPhrase]:
        """Every phrase left out or shortened, in any encoder or the negative prompt."""
        found: list[PromptPhrase] = []
        for fit in [*self.encoders, self.negative]:
            found += [p for p in [*fit.dropped, *fit.shortened] if p not in found]
        return found


# Bytes travel as base64 in JSON: Prefect hashes inputs as JSON when it can, and
# only JSON hashes the same in every process (its pickle fallback does not).
_BINARY = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")


class GeneratedImage(BaseModel):
    """One painted background."""

    model_config = _BINARY

    png: bytes = Field(repr=False)
    width: int
    height: int
    seed: int
    attempt: int
    backend: BackendIdentity


class QCCheck(BaseModel):
    """One measured check of a picture."""

    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool
    value: float
    limit: float
    detail: str


class QCReport(BaseModel):
    """The verdict on one picture: passed or not, a 1-10 score, and why."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    score: float = Field(ge=1, le=10)
    checks: list[QCCheck] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    backend: BackendIdentity


class TextStyle(BaseModel):
    """Colours chosen for the text panel from the measured picture."""

    model_config = ConfigDict(frozen=True)

    text_color: str
    panel_color: str
    panel_opacity: float = Field(ge=0, le=1)
    accent_color: str
    accent_text_color: str
    contrast: float = Field(description="Worst-case contrast ratio of body text (WCAG).")


class RenderedFlyer(BaseModel):
    """One flyer in one format, as bytes ready to be written."""

    model_config = _BINARY

    variant: int
    format: str
    design: str = "frosted"
    pdf: bytes | None = Field(default=None, repr=False)
    png: bytes = Field(repr=False)
    png_width: int
    png_height: int
    style: TextStyle
    font_sizes: dict[str, float] = Field(default_factory=dict)
    cut: list[str] = Field(default_factory=list, description="Copy left out to fit the panel.")
    font_fallbacks: list[str] = Field(
        default_factory=list,
        description="Texts set in another family than the chosen one (it cannot draw them).",
    )


class StepRecord(BaseModel):
    """One step of a run: what ran, for which variant and format, how long, and if cached."""

    step: str
    variant: int | None = None
    format: str | None = None
    attempt: int | None = None
    cached: bool
    seconds: float
    error: str | None = Field(
        default=None,
        description="Why the step failed, when the run went on without its result (a picture "
        "painted again, a builtin fallback, a picture shipped unchecked).",
    )


class AttemptRecord(BaseModel):
    """One painted picture and its verdict."""

    attempt: int
    seed: int
    width: int
    height: int
    qc: QCReport | None = None
    qc_error: str | None = Field(
        default=None, description="Why the picture went unchecked (vision backend down)."
    )
    image_error: str | None = Field(
        default=None,
        description="Why the painted picture was unusable (not a PNG of the requested size); "
        "another was painted.",
    )


class FormatRecord(BaseModel):
    """What one variant produced in one format."""

    format: str
    design: str = Field(default="frosted", description="The layout design of this variant.")
    prompt: FittedPrompt
    attempts: list[AttemptRecord]
    chosen_attempt: int
    qc_passed: bool | None = Field(description="None when QC was off.")
    files: list[str]
    style: TextStyle
    font_sizes: dict[str, float] = Field(default_factory=dict)
    cut: list[str] = Field(default_factory=list, description="Copy left out to fit the panel.")
    font_fallbacks: list[str] = Field(
        default_factory=list,
        description="Texts set in another family than the chosen one (it cannot draw them).",
    )


class VariantRecord(BaseModel):
    """Everything one variant is made of."""

    variant: int
    copy_: FlyerCopy = Field(alias="copy", serialization_alias="copy")
    art_direction: ImagePrompt
    formats: list[FormatRecord]
    text_fallbacks: list[str] = Field(
        default_factory=list,
        description="Text steps the builtin copywriter took over after bad model output.",
    )

    model_config = ConfigDict(populate_by_name=True)


class RunManifest(BaseModel):
    """The record of one run, written as ``manifest.json`` in its folder."""

    hyperlocal_version: str
    run_name: str
    created_at: datetime
    profile: str
    settings: dict[str, Any] = Field(description="The settings in force, secrets removed.")
    brief: Brief
    backends: dict[str, BackendIdentity]
    variants: list[VariantRecord]
    steps: list[StepRecord]
    model_calls: dict[str, int] = Field(description="Backend calls made in this run, per role.")
    cached_steps: int
    computed_steps: int
    damaged_cache: list[str] = Field(
        default_factory=list,
        description="Cached results found damaged (cut short, corrupted) and computed again.",
    )
    files: list[str]
    seconds: float
