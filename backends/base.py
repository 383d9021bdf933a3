"""The Protocols every backend implements, and the requests they take.

Each backend has the same small surface: it is built from settings by
``backends.registry``, reports an ``identity`` (part of every cache key: kind,
model, revision and the parameters that change its output), answers ``health()``
and does its role's one job. Backends raise only ``hyperlocal.errors`` faults.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from backends.work_log import WorkLog
from hyperlocal.layout.formats import Zone
from hyperlocal.models import (
    BackendIdentity,
    Brief,
    FittedPrompt,
    FlyerCopy,
    GeneratedImage,
    ImagePrompt,
    PromptSyntax,
    QCReport,
)
from hyperlocal.prompts.clip_tokens import TokenCounter


class Health(BaseModel):
    """What a backend says about itself when asked (``python -m flows.flyer --check``)."""

    role: str
    kind: str
    ok: bool
    detail: str
    models: list[str] = Field(default_factory=list)
    latency_s: float | None = None


class CopyRequest(BaseModel):
    """Ask for the copy of one variant."""

    model_config = ConfigDict(frozen=True)

    brief: Brief
    variant: int = Field(ge=1, description="1-based variant number.")
    variants: int = Field(ge=1, description="How many variants the run makes.")


class ArtRequest(BaseModel):
    """Ask for the art direction of one variant's picture."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    brief: Brief
    copy_: FlyerCopy = Field(alias="copy")
    variant: int = Field(ge=1)


class ImageRequest(BaseModel):
    """Ask for one background picture."""

    model_config = ConfigDict(frozen=True)

    prompt: FittedPrompt
    width: int = Field(ge=64, le=4096)
    height: int = Field(ge=64, le=4096)
    seed: int = Field(ge=0)
    attempt: int = Field(ge=1)
    steps: int = Field(ge=1)
    cfg_scale: float = Field(ge=0)
    palette: list[str] = Field(min_length=1, description="Brand colours as #RRGGBB.")
    text_zone: Zone = Field(description="Where the layout puts text: keep it calm.")


class CheckRequest(BaseModel):
    """Ask for the verdict on one picture."""

    model_config = ConfigDict(frozen=True)

    image: GeneratedImage
    text_zone: Zone
    subject: str = Field(description="What the picture must show, from the art direction.")
    min_score: float = Field(ge=1, le=10)


@runtime_checkable
class TextBackend(Protocol):
    """Writes the copy and art-directs the picture."""

    @property
    def identity(self) -> BackendIdentity:
        """What produces the output: kind, model, revision, output-changing parameters."""
        ...

    def health(self) -> Health:
        """Return whether the backend can work now, and what it offers."""
        ...

    def write_copy(self, request: CopyRequest, log: WorkLog | None = None) -> FlyerCopy:
        """Return valid copy for one variant with the brief's facts placed verbatim.

        Every request, re-ask and note goes to ``log`` when one is given. Raises
        ``PassingFault`` (retry later), ``BadOutput`` (after its own re-asks)
        or ``ConfigurationError``.
        """
        ...

    def direct_art(self, request: ArtRequest, log: WorkLog | None = None) -> ImagePrompt:
        """Return phrases for a picture with no lettering; logs and raises like ``write_copy``."""
        ...


@runtime_checkable
class ImageBackend(Protocol):
    """Paints a background picture with no lettering."""

    @property
    def identity(self) -> BackendIdentity:
        """What produces the output: kind, model, revision, output-changing parameters."""
        ...

    def health(self) -> Health:
        """Return whether the backend can work now, and what it offers."""
        ...

    @property
    def prompt_syntax(self) -> PromptSyntax:
        """How the backend takes prompts: encoders, emphasis syntax, long-prompt chunks."""
        ...

    def token_counters(self) -> list[TokenCounter]:
        """Return one tokenizer per text encoder: the model's own when it has one loaded."""
        ...

    def generate(self, request: ImageRequest) -> GeneratedImage:
        """Return one PNG picture of the requested size and seed.

        Raises ``PassingFault``, ``InvalidImage`` or ``ConfigurationError``.
        """
        ...


@runtime_checkable
class VisionBackend(Protocol):
    """Checks a picture before it reaches a flyer."""

    @property
    def identity(self) -> BackendIdentity:
        """What produces the verdict: kind, model, revision, thresholds."""
        ...

    def health(self) -> Health:
        """Return whether the backend can work now, and what it offers."""
        ...

    def check(self, request: CheckRequest, log: WorkLog | None = None) -> QCReport:
        """Return the verdict on one picture; raises ``PassingFault`` or ``ConfigurationError``.

        Model requests and re-asks go to ``log`` when one is given.
        """
        ...
