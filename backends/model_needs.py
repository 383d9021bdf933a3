"""The models this machine must hold for the backends the settings select, per role.

A role served in process needs its model here: text and vision when their
kind is ``mlx``, or ``auto`` with a model and no server URL (``auto`` picks mlx
once the model is present); image when ``registry.resolve`` picks
``diffusers`` (the model, its config folder when set, each LoRA). A model
behind an OpenAI-compatible server lives on that server and is listed as
``served``, never pulled. ``hyperlocal.modelstore.store`` says where each one is and
``hyperlocal.modelstore.download`` fetches it; ``python -m flows.models`` and
``models.allow_pull`` use this list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel

from backends import registry
from hyperlocal import modelstore
from hyperlocal.errors import DownloadFailed
from hyperlocal.modelstore import ModelEntry
from hyperlocal.modelstore import download as model_download
from hyperlocal.modelstore.progress import LineProgress, TransferProgress
from hyperlocal.settings import Settings

Role = Literal["text", "vision", "image"]
ROLES: tuple[Role, ...] = ("text", "vision", "image")


def _in_process_language(settings: Settings, role: Literal["text", "vision"]) -> str | None:
    """Return "in process", "served" or None for the text or vision role's model."""
    section = settings.text if role == "text" else settings.vision
    if not section.model:
        return None
    base_url = settings.text.effective_base_url() if role == "text" else settings.vision.base_url
    if section.kind == "mlx" or (section.kind == "auto" and not base_url):
        return "in process"
    if section.kind == "openai" or base_url:
        return "served"
    return None


def model_entries(settings: Settings, roles: Sequence[Role] = ROLES) -> list[ModelEntry]:
    """Return every model the selected backends need, per role, with where it is.

    Raises ``ConfigurationError`` for an unknown kind or a URL naming a pickle file.
    """
    models = settings.models
    entries: list[ModelEntry] = []
    for role in roles:
        if role in ("text", "vision"):
            section = settings.text if role == "text" else settings.vision
            where = _in_process_language(settings, role)
            if where == "served" and section.model:
                base_url = (
                    settings.text.effective_base_url()
                    if role == "text"
                    else settings.vision.base_url
                )
                entries.append(modelstore.served_entry(role, section.model, base_url or ""))
            elif where == "in process" and section.model:
                entries.append(
                    modelstore.describe(
                        role,
                        "model",
                        section.model,
                        purpose="mlx-lm" if role == "text" else "mlx-vlm",
                        models=models,
                        revision=section.revision,
                        setting=f"HYPERLOCAL_{role.upper()}__MODEL",
                    )
                )
            continue
        if registry.resolve("image", settings).kind != "diffusers" or not settings.image.model:
            continue
        image = settings.image
        fp16 = image.dtype in ("auto", "float16")
        entries.append(
            modelstore.describe(
                "image",
                "model",
                image.model,
                purpose="sdxl",
                models=models,
                revision=image.revision,
                sha256=image.sha256,
                prefer_fp16=fp16,
                setting="HYPERLOCAL_IMAGE__MODEL",
            )
        )
        if image.config:
            entries.append(
                modelstore.describe(
                    "image",
                    "config",
                    image.config,
                    purpose="sdxl-config",
                    models=models,
                    setting="HYPERLOCAL_IMAGE__CONFIG",
                )
            )
        for number, lora in enumerate(image.loras, start=1):
            entries.append(
                modelstore.describe(
                    "image",
                    f"lora {number}",
                    lora.path,
                    purpose="lora",
                    models=models,
                    sha256=lora.sha256,
                    setting="HYPERLOCAL_IMAGE__LORAS",
                )
            )
    return entries


class PullOutcome(BaseModel):
    """What a pull did with each entry."""

    fetched: list[ModelEntry] = []
    skipped: list[tuple[ModelEntry, str]] = []
    #: Missing local paths: nothing to download, the settings must change.
    unfetchable: list[tuple[ModelEntry, str]] = []
    failed: list[tuple[ModelEntry, str]] = []


def pull_missing(
    settings: Settings,
    entries: Sequence[ModelEntry] | None = None,
    progress: Callable[[ModelEntry], TransferProgress | None] | None = None,
    say: Callable[[str], None] | None = None,
) -> PullOutcome:
    """Fetch every missing hub or URL entry; say what was skipped and why.

    A failed download is recorded and the others go on. Raises
    ``ConfigurationError`` only for bad settings (before anything is fetched).
    """
    entries = model_entries(settings) if entries is None else entries
    outcome = PullOutcome()
    for entry in entries:
        if entry.present:
            why = (
                f"served by {entry.where}" if entry.kind == "served" else f"present: {entry.where}"
            )
            outcome.skipped.append((entry, why))
            continue
        if not entry.pullable:
            outcome.unfetchable.append(
                (
                    entry,
                    f"{entry.setting}: no such file or folder: {entry.where} (a local path: "
                    "nothing to download)",
                )
            )
            continue
        if say:
            say(f"fetching {entry.role} {entry.what} {entry.shown}")
        try:
            path = model_download.pull(
                entry, settings.models, settings.retry, progress(entry) if progress else None
            )
        except DownloadFailed as exc:
            outcome.failed.append((entry, str(exc)))
            continue
        outcome.fetched.append(
            entry.model_copy(
                update={
                    "present": True,
                    "where": str(path),
                    "size_bytes": modelstore.disk_size(path),
                }
            )
        )
    return outcome


def ensure_models(settings: Settings, say: Callable[[str], None]) -> None:
    """Before a run: fetch what is missing when ``models.allow_pull`` is on; else nothing.

    Raises ``DownloadFailed`` naming every model that could not be fetched.
    """
    if not settings.models.allow_pull:
        return
    entries = [e for e in model_entries(settings) if not e.present and e.pullable]
    if not entries:
        return
    outcome = pull_missing(
        settings,
        entries,
        progress=lambda entry: LineProgress(say),
        say=say,
    )
    for entry in outcome.fetched:
        say(f"fetched {entry.role} {entry.what} {entry.shown}")
    if outcome.failed:
        raise DownloadFailed("; ".join(reason for _entry, reason in outcome.failed))
