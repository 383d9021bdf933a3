"""What the steps hand each other: copy, art direction, prompts, pictures, verdicts, flyers.

Each step turns one model into the next (``FlyerCopy``, ``ImagePrompt``,
``FittedPrompt``, ``GeneratedImage``, ``QCReport``, ``RenderedFlyer``). Models are
frozen so they hash the same way in every process (they are part of cache keys).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from hyperlocal.models.brief import Brief
from hyperlocal.models.fields import (
    BINARY,
    STRICT,
    Line40,
    Line50_0,
    Line60,
    Line70,
    Line100,
    Line110_0,
    Line130,
    Line140_0,
    Line200_0,
)


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


class CopyDraft(BaseModel):
    """The words a copywriter writes for one variant: everything but the facts.

    The date, time, place and price are not the model's to write: ``FlyerCopy.from_draft``
    places them from the brief, verbatim. This is also the JSON schema a model is asked for.
    Keys it does not know are dropped, not refused: a model that still writes a "when" or
    a "price" has them replaced by the brief's own, and asking again would cost minutes.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    angle: Line40 = Field(description="The creative angle of this variant.")
    headline: Line70 = Field(description="The big line.")
    subhead: Line140_0 = Field(default="", description="One line under the headline.")
    body_points: list[Line100] = Field(
        default_factory=list, max_length=4, description="Up to four short points."
    )
    call_to_action: Line60 = Field(description="What to do now.")
    fine_print: Line200_0 = Field(default="", description="Small print.")

    def written_runs(self) -> dict[str, str]:
        """Return each piece of written text by where it goes (``body_points[2]``, ...)."""
        runs = {"headline": self.headline, "subhead": self.subhead}
        runs |= {f"body_points[{i}]": point for i, point in enumerate(self.body_points)}
        runs |= {"call_to_action": self.call_to_action, "fine_print": self.fine_print}
        return {where: text for where, text in runs.items() if text}


class FlyerCopy(CopyDraft):
    """The words of one variant: the written draft and the brief's facts."""

    model_config = STRICT

    when: Line110_0 = Field(default="", description="Date and time, exactly as the brief.")
    where: Line130 = Field(description="Place, exactly as the brief.")
    price: Line50_0 = Field(default="", description="Price or offer, exactly as the brief.")

    @classmethod
    def from_draft(cls, draft: CopyDraft, brief: Brief) -> FlyerCopy:
        """Return ``draft`` with the brief's date, time, place and price placed verbatim."""
        return cls(**draft.model_dump(), **placed_facts(brief))

    def draft(self) -> CopyDraft:
        """Return the written part alone (what a model is asked for)."""
        return CopyDraft.model_validate(self.model_dump(include=set(CopyDraft.model_fields)))

    def text_runs(self) -> list[str]:
        """Return every piece of text this copy puts on the flyer."""
        runs = [self.headline, self.subhead, *self.body_points, self.when, self.where, self.price]
        return [run for run in [*runs, self.call_to_action, self.fine_print] if run]


#: How the date and time share the "when" line.
WHEN_SEPARATOR = " · "


def placed_facts(brief: Brief) -> dict[str, str]:
    """Return a flyer's fact lines (``when``, ``where``, ``price``) from the brief, verbatim."""
    when = WHEN_SEPARATOR.join(part for part in (brief.date, brief.time) if part)
    return {"when": when, "where": brief.place, "price": brief.price or ""}


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


class DraftPhrase(BaseModel):
    """One phrase of art direction as a model writes it: short, and no emphasis weight."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    role: PhraseRole
    priority: int = Field(ge=0, le=100, description="Higher is kept longer when fitting.")


class ArtDraft(BaseModel):
    """Art direction as a model is asked to write it: a few short phrases.

    The schema a model is held to. Without bounds a small model under constrained
    decoding repeated one phrase until ``max_tokens`` cut the answer off, and every
    optional key (an emphasis weight) costs tokens a laptop pays for in seconds.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    phrases: list[DraftPhrase] = Field(min_length=1, max_length=6)
    negative: list[DraftPhrase] = Field(default_factory=list, max_length=4)

    def prompt(self) -> ImagePrompt:
        """Return the art direction as the steps take it (every weight 1.0)."""
        return ImagePrompt(
            phrases=[PromptPhrase(**p.model_dump()) for p in self.phrases],
            negative=[PromptPhrase(**p.model_dump()) for p in self.negative],
        )


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


class GeneratedImage(BaseModel):
    """One painted background."""

    model_config = BINARY

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


class FlyerLayout(BaseModel):
    """How one flyer was laid out: what the flyer (``RenderedFlyer``) and its record in the
    manifest (``FormatRecord``) both carry."""

    format: str
    design: str = Field(default="frosted", description="The layout design of this variant.")
    style: TextStyle
    font_sizes: dict[str, float] = Field(default_factory=dict)
    cut: list[str] = Field(default_factory=list, description="Copy left out to fit the panel.")
    font_fallbacks: list[str] = Field(
        default_factory=list,
        description="Texts set in another family than the chosen one (it cannot draw them).",
    )

    def layout_fields(self) -> dict[str, Any]:
        """Return the layout's fields by name, to build another model that carries them."""
        return {name: getattr(self, name) for name in FlyerLayout.model_fields}


class RenderedFlyer(FlyerLayout):
    """One flyer in one format, as bytes ready to be written."""

    model_config = BINARY

    variant: int
    pdf: bytes | None = Field(default=None, repr=False)
    png: bytes = Field(repr=False)
    png_width: int
    png_height: int
