"""The record of a run: every variant, format, attempt and step (``manifest.json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from hyperlocal.models.brief import Brief
from hyperlocal.models.steps import (
    BackendIdentity,
    FittedPrompt,
    FlyerCopy,
    FlyerLayout,
    ImagePrompt,
    QCReport,
)
from hyperlocal.models.work import ModelWork


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
    work: ModelWork | None = Field(
        default=None,
        description="What a text step asked of its model: requests, re-asks and their "
        "reasons, retried faults, tokens, time, and who wrote the answer (the original "
        "computation's, for a cached step).",
    )
    on_worker: bool = Field(
        default=False,
        description="Whether a model worker (python -m flows.workers) ran the step, not "
        "the run's own process.",
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


class FormatRecord(FlyerLayout):
    """What one variant produced in one format: its layout, prompt, pictures and files."""

    prompt: FittedPrompt
    attempts: list[AttemptRecord]
    chosen_attempt: int = Field(description="Which attempt's picture the flyer uses.")
    qc_passed: bool | None = Field(description="None when QC was off.")
    files: list[str]


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
    copy_writer: str = Field(default="", description="The backend that wrote the printed copy.")
    art_writer: str = Field(default="", description="The backend that art-directed the picture.")

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
    model_calls: dict[str, int] = Field(
        description="Backend calls made in this run, per role: a text step counts each "
        "request it sent to its model (re-asks included), any other step one; cached steps none."
    )
    cached_steps: int
    computed_steps: int
    damaged_cache: list[str] = Field(
        default_factory=list,
        description="Cached results found damaged (cut short, corrupted) and computed again.",
    )
    files: list[str]
    seconds: float
