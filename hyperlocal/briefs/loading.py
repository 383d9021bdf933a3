"""Reading briefs from TOML, YAML or JSON files and from command-line flags."""

from __future__ import annotations

import json
import os
import stat
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


def read_brief_text(path: Path, limit: int = MAX_BRIEF_BYTES, what: str = "a brief") -> str:
    """Return the text of the brief file ``path``, a UTF-8 byte-order mark dropped.

    Only a regular file is read (after following links): a device such as
    ``/dev/zero`` would be read until memory runs out and a FIFO would block, so
    the file is opened without blocking, checked with ``fstat`` on the opened
    descriptor (no race with a swapped name), and read to at most ``limit`` + 1
    bytes (``what`` names the file in the error). Raises ``BriefError`` with one line.
    """
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise BriefError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise BriefError(f"{path}: cannot read it ({exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise BriefError(f"{path}: is {_file_kind(mode)}, not a regular file: name {what} file")
        data = _read_at_most(fd, limit + 1)
    except OSError as exc:
        raise BriefError(f"{path}: cannot read it ({exc})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise BriefError(f"{path}: more than {limit} bytes is too large for {what}")
    try:
        # utf-8-sig: editors on Windows save UTF-8 with a byte-order mark; it carries nothing.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BriefError(
            f"{path}: cannot read it: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def _read_at_most(fd: int, size: int) -> bytes:
    """Return the next ``size`` bytes of ``fd``, or fewer at its end; raises ``OSError``."""
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = os.read(fd, min(left, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    """Return what a non-regular file is, in words (``a folder``, ``a FIFO``)."""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")


def read_brief_data(path: Path) -> dict[str, Any]:
    """Return the raw mapping in a TOML, YAML or JSON brief file; raises ``BriefError``."""
    suffix = path.suffix.lower()
    if suffix not in BRIEF_SUFFIXES:
        raise BriefError(f"{path}: a brief must be a {', '.join(BRIEF_SUFFIXES)} file")
    text = read_brief_text(path)
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
