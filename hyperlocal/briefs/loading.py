"""Reading briefs from TOML, YAML or JSON files and from command-line flags."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hyperlocal.briefs.assets import resolve_asset
from hyperlocal.errors import AssetError, BriefError, first_line
from hyperlocal.models import Brief

#: Briefs are a few hundred bytes; refusing huge files keeps a typo from eating memory.
MAX_BRIEF_BYTES = 256 * 1024
BRIEF_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """Return one line naming every bad field of a brief and what is wrong with it."""
    allowed = ", ".join(Brief.model_fields)
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "brief"
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown field {where!r} (allowed: {allowed})")
        elif error["type"] == "missing":
            parts.append(f"{where} is required")
        else:
            message = error["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {message}")
    return f"{source}: " + "; ".join(parts)


def read_brief_data(path: Path) -> dict[str, Any]:
    """Return the raw mapping in a TOML, YAML or JSON brief file; raises ``BriefError``."""
    suffix = path.suffix.lower()
    if suffix not in BRIEF_SUFFIXES:
        raise BriefError(f"{path}: a brief must be a {', '.join(BRIEF_SUFFIXES)} file")
    try:
        size = path.stat().st_size
        if size > MAX_BRIEF_BYTES:
            raise BriefError(f"{path}: {size} bytes is too large for a brief")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BriefError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BriefError(f"{path}: cannot read it ({exc})") from None
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except RecursionError:
        raise BriefError(f"{path}: nested too deeply to be a brief") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = suffix.lstrip(".").upper()
        raise BriefError(f"{path}: not valid {kind}: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise BriefError(f"{path}: the brief must be a table of fields, not {type(data).__name__}")
    # A TOML file may put the brief under [brief] next to other tables.
    if set(data) == {"brief"} and isinstance(data["brief"], dict):
        data = data["brief"]
    return data


def validate_brief(
    data: Mapping[str, Any],
    source: str,
    base_dir: Path | None = None,
    allowed_dirs: Iterable[Path] = (),
) -> Brief:
    """Return the validated brief, its logo resolved inside the allowed folders.

    Raises ``BriefError`` with one line naming each bad field, or ``AssetError``
    for a logo outside the allowed folders or missing.
    """
    try:
        brief = Brief.model_validate(dict(data))
    except ValidationError as exc:
        raise BriefError(describe_validation_error(exc, source)) from None
    if brief.brand.logo is not None:
        try:
            logo = resolve_asset(brief.brand.logo, base_dir, allowed_dirs)
        except AssetError as exc:
            raise AssetError(f"{source}: brand.logo: {exc}") from None
        brief = brief.model_copy(
            update={"brand": brief.brand.model_copy(update={"logo": logo})}, deep=True
        )
    return brief


def load_brief(
    path: Path,
    overrides: Mapping[str, Any] | None = None,
    allowed_dirs: Iterable[Path] = (),
) -> Brief:
    """Read, merge command-line ``overrides`` into, and validate the brief in ``path``.

    Raises ``BriefError`` or ``AssetError`` with one clear line.
    """
    data = read_brief_data(path)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return validate_brief(data, str(path), base_dir=path.parent, allowed_dirs=allowed_dirs)
