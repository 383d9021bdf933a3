"""Where settings come from besides ``HYPERLOCAL_*``: the earlier variable names.

Also turns a validation error into one line that names each variable.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

ENV_PREFIX = "HYPERLOCAL_"

# Earlier variable name -> (path in Settings, how to read it).
_LEGACY: dict[str, tuple[str, ...]] = {
    "HYPERLOCAL_LLM_PROVIDER": ("text", "provider"),
    "HYPERLOCAL_LLM_BASE_URL": ("text", "base_url"),
    "HYPERLOCAL_TEXT_BASE_URL": ("text", "base_url"),  # listed later: wins over LLM_BASE_URL
    "HYPERLOCAL_LLM_API_KEY": ("text", "api_key"),
    "HYPERLOCAL_VISION_BASE_URL": ("vision", "base_url"),
    "HYPERLOCAL_QC_ENABLED": ("qc", "enabled"),
    "HYPERLOCAL_IMAGE_SIZE": ("image", "size"),
    "SDXL_API_URL": ("image", "api_url"),
    "SDXL_STEPS": ("image", "steps"),
    "SDXL_CFG_SCALE": ("image", "cfg_scale"),
}


def legacy_name(path: tuple[str, ...]) -> str | None:
    """Return the earlier variable name that also sets ``path``, if there is one."""
    names = [name for name, target in _LEGACY.items() if target == path]
    return names[-1] if names else None


class LegacyEnvSource(PydanticBaseSettingsSource):
    """Reads the earlier setup's variable names and maps them onto the new fields."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: values come from ``__call__`` as one nested mapping."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """Return the values set through earlier variable names, as nested settings."""
        values: dict[str, Any] = {}
        for name, (section, key) in _LEGACY.items():
            raw = os.environ.get(name)
            if raw is None or raw == "":
                continue
            values.setdefault(section, {})[key] = raw
            if name == "HYPERLOCAL_LLM_PROVIDER":
                values["text"].setdefault("kind", "openai")
            if name == "SDXL_API_URL":
                values["image"].setdefault("kind", "a1111")
        return values


def describe_settings_error(exc: ValidationError) -> str:
    """Return one line naming each bad variable, what it holds and what is allowed."""
    parts = []
    for error in exc.errors():
        loc = tuple(str(p) for p in error["loc"] if not isinstance(p, int))
        name = ENV_PREFIX + "__".join(loc).upper()
        legacy = legacy_name(loc)
        if legacy and legacy != name:
            name += f" (or {legacy})"
        message = error["msg"]
        if error["type"] == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            message = f"must be one of {expected}"
        raw = error.get("input")
        shown = f" (got {raw!r})" if isinstance(raw, str | int | float) else ""
        parts.append(f"{name}: {message}{shown}")
    return "; ".join(parts)
