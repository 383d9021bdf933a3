"""Model references: what a setting names (a local path, a URL, a hub id) and URL file paths.

A URL download lands at ``<models.dir>/downloads/<name>-<8 hex of the URL's
sha256>.safetensors``, fetched through ``<file>.part`` (with ``<file>.part.json``
for resuming) and recorded in ``<file>.sha256``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from hyperlocal.errors import ConfigurationError
from hyperlocal.redaction import redact_url

#: The command that fetches what the settings name; every "missing" message ends with it.
PULL_COMMAND = "python -m flows.models pull"

ReferenceKind = Literal["path", "hub", "url"]
EntryKind = Literal["path", "hub", "url", "served"]
#: What a model is for: decides which files of a repository are fetched, and what
#: file marks a usable folder.
Purpose = Literal["mlx-lm", "mlx-vlm", "sdxl", "sdxl-config", "lora"]

_WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".npz")
_REFUSED_DOWNLOAD_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_url(reference: str) -> bool:
    """Return True for an http(s) URL."""
    return reference.lower().startswith(("http://", "https://"))


def is_path_like(reference: str) -> bool:
    """Return True when ``reference`` reads as a local path even if nothing is there."""
    return reference.startswith(("/", ".", "~")) or reference.lower().endswith(_WEIGHT_SUFFIXES)


def classify(reference: str) -> ReferenceKind:
    """Return what ``reference`` is: an http(s) URL, a local path, or a Hugging Face repo id.

    An existing path wins over a repo id (``models/sdxl`` on disk is a folder);
    a name that is neither path-like nor ``org/name`` is a (missing) local path.
    """
    if is_url(reference):
        return "url"
    if is_path_like(reference) or Path(reference).expanduser().exists():
        return "path"
    return "hub" if _HUB_ID.match(reference) else "path"


def display_reference(reference: str) -> str:
    """Return ``reference`` safe to print: no URL password, no token in the query."""
    return redact_url(reference) if is_url(reference) else reference


def url_file_name(url: str) -> str:
    """Return the local file name of a URL download: unique per URL, always ``.safetensors``.

    The last path segment, sanitised, then 8 hex digits of the URL's sha256 (two
    URLs never share a file), then ``.safetensors`` when it had no such suffix
    (Civitai links end in a number). Raises ``ConfigurationError`` for a pickle
    suffix (``.ckpt``, ``.pt``, ``.bin``): only safetensors files are loaded.
    """
    segment = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    if segment.lower().endswith(_REFUSED_DOWNLOAD_SUFFIXES):
        raise ConfigurationError(
            f"{display_reference(url)} names a {Path(segment).suffix} file: only .safetensors "
            "models are downloaded and loaded (pickled checkpoints can run code)"
        )
    stem = segment[: -len(".safetensors")] if segment.lower().endswith(".safetensors") else segment
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:80] or "model"
    tag = hashlib.sha256(url.encode()).hexdigest()[:8]
    return f"{stem}-{tag}.safetensors"


def url_download_path(url: str, models_dir: Path) -> Path:
    """Return where the download of ``url`` lives: ``<models_dir>/downloads/<name>``."""
    return models_dir.expanduser() / "downloads" / url_file_name(url)


def part_path(dest: Path) -> Path:
    """Return the unfinished download of ``dest``: ``<dest>.part``."""
    return dest.with_name(dest.name + ".part")


def part_meta_path(dest: Path) -> Path:
    """Return the record of an unfinished download (URL key, validator, total)."""
    return dest.with_name(dest.name + ".part.json")


def digest_record(dest: Path) -> Path:
    """Return the sha256sum-format record written next to a finished download."""
    return dest.with_name(dest.name + ".sha256")


def read_part_meta(dest: Path) -> dict[str, Any]:
    """Return the record of an unfinished download of ``dest``; {} when there is none."""
    try:
        data = json.loads(part_meta_path(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
