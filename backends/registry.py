"""Builds the configured backends from settings, once per process.

Tasks ask the registry, never a concrete class, so a backend is chosen in
settings alone. A built backend is kept and reused by every task in the
process; ``auto`` resolves to the best kind this installation can build and
says why. New kinds register a builder with ``register``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from backends.base import ImageBackend, TextBackend, VisionBackend
from hyperlocal import modelstore
from hyperlocal.errors import BackendNotAvailable
from hyperlocal.modelstore import Purpose
from hyperlocal.settings import Settings

Role = Literal["text", "image", "vision"]
Builder = Callable[[Settings], Any]


class Resolved(BaseModel):
    """Which kind serves a role, and why it was picked."""

    role: Role
    kind: str
    reason: str


def _builtin_text(settings: Settings) -> TextBackend:
    from backends.builtin_text import BuiltinCopywriter

    return BuiltinCopywriter()


def _openai_text(settings: Settings) -> TextBackend:
    from backends.openai_text import OpenAITextBackend

    return OpenAITextBackend.from_settings(settings.text)


def _mlx_text(settings: Settings) -> TextBackend:
    from backends.mlx_text import MlxTextBackend

    return MlxTextBackend.from_settings(settings.text, settings.models_memory_gb)


def _openai_vision(settings: Settings) -> VisionBackend:
    from backends.openai_vision import OpenAIVisionBackend

    return OpenAIVisionBackend.from_settings(
        settings.vision,
        max_in_flight=settings.vision.max_in_flight,
        profile=settings.vision.profile,
    )


def _mlx_vision(settings: Settings) -> VisionBackend:
    from backends.mlx_vision import MlxVisionBackend

    return MlxVisionBackend.from_settings(settings.vision, settings.models_memory_gb)


def _a1111_image(settings: Settings) -> ImageBackend:
    from backends.a1111_image import A1111ImageBackend

    return A1111ImageBackend.from_settings(settings.image, timeout_s=settings.image.timeout_s)


def _diffusers_image(settings: Settings) -> ImageBackend:
    from backends.diffusers_image import DiffusersImageBackend

    return DiffusersImageBackend.from_settings(settings)


def _builtin_image(settings: Settings) -> ImageBackend:
    from backends.builtin_image import BuiltinPainter

    return BuiltinPainter()


def _heuristic_vision(settings: Settings) -> VisionBackend:
    from backends.heuristic_vision import HeuristicVision

    return HeuristicVision()


_BUILDERS: dict[tuple[str, str], Builder] = {
    ("text", "builtin"): _builtin_text,
    ("text", "openai"): _openai_text,
    ("text", "mlx"): _mlx_text,
    ("image", "builtin"): _builtin_image,
    ("image", "a1111"): _a1111_image,
    ("image", "diffusers"): _diffusers_image,
    ("vision", "heuristic"): _heuristic_vision,
    ("vision", "openai"): _openai_vision,
    ("vision", "mlx"): _mlx_vision,
}
#: The kinds that load a model into the process that runs their steps.
IN_PROCESS_KINDS: frozenset[tuple[str, str]] = frozenset(
    {("text", "mlx"), ("image", "diffusers"), ("vision", "mlx")}
)
#: The kind ``auto`` falls back to for each role: it needs no model at all.
_OFFLINE_KIND: dict[str, str] = {"text": "builtin", "image": "builtin", "vision": "heuristic"}

_instances: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


def register(role: Role, kind: str, builder: Builder) -> None:
    """Make ``kind`` buildable for ``role``; ``builder(settings)`` returns the backend."""
    with _lock:
        _BUILDERS[(role, kind)] = builder
        for key in [k for k in _instances if k[:2] == (role, kind)]:
            del _instances[key]


def _configured_kind(role: Role, settings: Settings) -> str:
    return str(getattr(settings, role).kind)


def _hint_auto_skipped(role: Role, settings: Settings) -> str:
    section = getattr(settings, role)
    configured = [name for name in ("base_url", "model", "api_url") if getattr(section, name, None)]
    if not configured:
        return "nothing else is configured"
    if role in ("text", "vision"):
        why = "names no server and no local mlx model folder"
    else:
        why = "but neither api_url (a1111) nor model (diffusers) is set"
    return f"{', '.join(configured)} is set, {why}; the {_OFFLINE_KIND[role]} kind needs no model"


def resolve(role: Role, settings: Settings) -> Resolved:
    """Return the kind that serves ``role`` under ``settings``, and why.

    Raises ``BackendNotAvailable`` for a kind this installation cannot build.
    """
    kind = _configured_kind(role, settings)
    if kind == "auto":
        for (r, k), _builder in _BUILDERS.items():
            if r == role and k != _OFFLINE_KIND[role] and _is_configured(role, k, settings):
                return Resolved(role=role, kind=k, reason="auto: configured")
        fallback = _OFFLINE_KIND[role]
        return Resolved(
            role=role, kind=fallback, reason=f"auto: {_hint_auto_skipped(role, settings)}"
        )
    if (role, kind) in _BUILDERS:
        return Resolved(role=role, kind=kind, reason="set in settings")
    known = sorted(k for r, k in _BUILDERS if r == role)
    raise BackendNotAvailable(
        f"unknown {role} kind {kind!r}; HYPERLOCAL_{role.upper()}__KIND may be: "
        f"auto, {', '.join(known)}"
    )


def loads_model(role: Role, settings: Settings) -> bool:
    """Whether ``role``'s backend loads a model into the process that runs its steps.

    Raises ``BackendNotAvailable`` for a kind this installation cannot build.
    """
    return (role, resolve(role, settings).kind) in IN_PROCESS_KINDS


def _is_local_model(
    model: str | None, revision: str | None = None, purpose: Purpose = "mlx-lm"
) -> bool:
    """Whether ``model`` is a model folder here: a local one, or a downloaded hub snapshot."""
    if not model or modelstore.classify(model) == "url":
        return False
    folder = modelstore.local_path(
        model, purpose=purpose, models_dir=Path("models"), revision=revision
    )
    return folder is not None and (folder / "config.json").is_file()


def _is_configured(role: str, kind: str, settings: Settings) -> bool:
    """Whether settings name what ``kind`` needs, so that ``auto`` may pick it."""
    if (role, kind) == ("text", "openai"):
        return settings.text.effective_base_url() is not None
    if (role, kind) == ("text", "mlx"):
        return settings.text.effective_base_url() is None and _is_local_model(
            settings.text.model, settings.text.revision
        )
    if (role, kind) == ("vision", "openai"):
        return bool(settings.vision.base_url)
    if (role, kind) == ("image", "a1111"):
        return bool(settings.image.api_url)
    if (role, kind) == ("image", "diffusers"):
        # With a server URL the model names its checkpoint (a1111); alone, it is ours to load.
        return not settings.image.api_url and bool(settings.image.model)
    if (role, kind) == ("vision", "mlx"):
        return not settings.vision.base_url and _is_local_model(
            settings.vision.model, settings.vision.revision, "mlx-vlm"
        )
    return False


def _backend(role: Role, settings: Settings) -> Any:
    resolved = resolve(role, settings)
    section: BaseModel = getattr(settings, role)
    # The whole section is the key: a changed setting builds a new backend.
    key = (role, resolved.kind, section.model_dump_json())
    with _lock:
        backend = _instances.get(key)
        if backend is None:
            backend = _BUILDERS[(role, resolved.kind)](settings)
            _instances[key] = backend
        return backend


def text_backend(settings: Settings) -> TextBackend:
    """Return the process's text backend for ``settings``; raises ``ConfigurationError``."""
    return _backend("text", settings)  # type: ignore[no-any-return]


def image_backend(settings: Settings) -> ImageBackend:
    """Return the process's image backend for ``settings``; raises ``ConfigurationError``."""
    return _backend("image", settings)  # type: ignore[no-any-return]


def vision_backend(settings: Settings) -> VisionBackend:
    """Return the process's vision backend for ``settings``; raises ``ConfigurationError``."""
    return _backend("vision", settings)  # type: ignore[no-any-return]


def backend_for(role: Role, settings: Settings) -> TextBackend | ImageBackend | VisionBackend:
    """Return the backend serving ``role``; raises ``ConfigurationError``."""
    return _backend(role, settings)  # type: ignore[no-any-return]


def run_roles(settings: Settings) -> tuple[Role, ...]:
    """Return the roles a run under ``settings`` uses: text and image, vision only with QC on."""
    return ("text", "image", "vision") if settings.qc.enabled else ("text", "image")


def build_run_backends(
    settings: Settings, skip: Iterable[Role] = ()
) -> dict[Role, TextBackend | ImageBackend | VisionBackend]:
    """Build (or reuse) every backend a run under ``settings`` needs, by role, but ``skip``.

    Called before any work, so that a configuration error stops a run, a batch or
    ``flows.deploy`` at once; models still load lazily, on first use. (Roles whose
    steps run on model workers are skipped: the workers build those.) Raises
    ``ConfigurationError`` naming what to fix.
    """
    skipped = set(skip)
    return {
        role: backend_for(role, settings) for role in run_roles(settings) if role not in skipped
    }


def clear() -> None:
    """Forget every built backend (tests, or after settings change at run time)."""
    with _lock:
        _instances.clear()
