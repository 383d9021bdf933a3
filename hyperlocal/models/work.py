"""What a model step did to get its answer: requests, re-asks, tokens, time, who wrote it.

A text or vision step hands back its answer together with a ``ModelWork``, so the
manifest and the command line's summary can say what each step cost and what was
caught on the way (a re-ask for a wrong weekday, a server that ignored the schema,
a fallback to the builtin copywriter), even when the answer came from the cache.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from hyperlocal.models.steps import BackendIdentity, FlyerCopy, ImagePrompt, QCReport


class ModelWork(BaseModel):
    """The record of one model step's conversation (or of a builtin step's template)."""

    model_config = ConfigDict(frozen=True)

    writer: str = Field(description="The backend whose answer was used, e.g. mlx:SmolLM2.")
    structured_output: str = Field(
        default="",
        description="How the answer was held to its schema: constrained decoding in process, "
        "the server's json_schema or json_object form, or the prompt alone.",
    )
    requests: int = Field(default=0, ge=0, description="Model requests sent (re-asks included).")
    reasks: list[str] = Field(
        default_factory=list, description="Why each re-ask was needed, in order."
    )
    retries: list[str] = Field(
        default_factory=list, description="Passing faults the backend retried, in order."
    )
    notes: list[str] = Field(
        default_factory=list,
        description="Everything else worth knowing: fields trimmed to fit the context window, "
        "a probe's result, text cut to fit the layout.",
    )
    cuts: list[str] = Field(
        default_factory=list,
        description="Texts shortened or left out to fit, each with its field and its "
        "original length: the flyer carries the shortened text.",
    )
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    tokens_estimated: bool = Field(
        default=False, description="Token counts counted here, not reported by the server."
    )
    seconds: float = Field(default=0.0, ge=0, description="Time spent waiting for the model.")


class WrittenCopy(BaseModel):
    """What the copy step returns: the copy and the work that went into it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    copy_: FlyerCopy = Field(alias="copy")
    work: ModelWork
    #: What wrote it (on a model worker, the run's own process never builds the backend).
    backend: BackendIdentity


class DirectedArt(BaseModel):
    """What the art-direction step returns: the art direction and the work behind it."""

    model_config = ConfigDict(frozen=True)

    art: ImagePrompt
    work: ModelWork
    #: What directed it (on a model worker, the run's own process never builds the backend).
    backend: BackendIdentity


class CheckedPicture(BaseModel):
    """What the picture-check step returns: the verdict and the model work behind it."""

    model_config = ConfigDict(frozen=True)

    report: QCReport
    work: ModelWork
