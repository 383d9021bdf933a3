"""Model entries: one model the settings name, where it is expected and whether it is there."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from hyperlocal.errors import ConfigurationError, ModelMissing
from hyperlocal.modelstore.hub import hub_cache, hub_repo_folder, hub_snapshot
from hyperlocal.modelstore.references import (
    PULL_COMMAND,
    EntryKind,
    Purpose,
    classify,
    display_reference,
    part_path,
    read_part_meta,
    url_download_path,
)
from hyperlocal.redaction import redact_url
from hyperlocal.settings import ModelsSettings


class ModelEntry(BaseModel):
    """One model the settings name: what it is for, where it is expected, whether it is there."""

    role: Literal["text", "vision", "image"]
    #: Which setting: "model", "config" or "lora <n>".
    what: str
    reference: str
    kind: EntryKind
    purpose: Purpose
    #: The folder or file where it is (present) or is expected (missing); a served
    #: model's server URL.
    where: str
    present: bool
    size_bytes: int | None = None
    revision: str | None = None
    #: The expected sha256 of a URL download, from settings.
    sha256: str | None = None
    prefer_fp16: bool = True
    #: Name of the setting, for messages (``HYPERLOCAL_IMAGE__MODEL``).
    setting: str = ""
    #: Bytes of an unfinished URL download (``.part``), and its total when known.
    partial_bytes: int | None = None
    partial_total: int | None = None

    @property
    def shown(self) -> str:
        """The reference as it may be printed (no secrets)."""
        return display_reference(self.reference)

    @property
    def pullable(self) -> bool:
        """Whether ``pull`` can fetch it (a hub repository or a URL)."""
        return self.kind in ("hub", "url")


def served_entry(role: Literal["text", "vision"], reference: str, base_url: str) -> ModelEntry:
    """Return the entry of a model that a server holds (nothing to fetch here)."""
    return ModelEntry(
        role=role,
        what="model",
        reference=reference,
        kind="served",
        purpose="mlx-lm" if role == "text" else "mlx-vlm",
        where=redact_url(base_url),
        present=True,
    )


def describe(
    role: Literal["text", "vision", "image"],
    what: str,
    reference: str,
    *,
    purpose: Purpose,
    models: ModelsSettings,
    revision: str | None = None,
    sha256: str | None = None,
    prefer_fp16: bool = True,
    setting: str = "",
) -> ModelEntry:
    """Return the entry for one reference: its kind, where it is expected, and if it is there.

    Raises ``ConfigurationError`` for a URL that names a pickle file.
    """
    kind = classify(reference)
    common: dict[str, Any] = {
        "role": role,
        "what": what,
        "reference": reference,
        "kind": kind,
        "purpose": purpose,
        "revision": revision if kind == "hub" else None,
        "sha256": sha256 if kind == "url" else None,
        "prefer_fp16": prefer_fp16,
        "setting": setting,
    }
    if kind == "url":
        dest = url_download_path(reference, models.dir)
        part = part_path(dest)
        partial = part.stat().st_size if part.is_file() else None
        total = read_part_meta(dest).get("total") if partial is not None else None
        present = dest.is_file()
        return ModelEntry(
            **common,
            where=str(dest.absolute()),
            present=present,
            size_bytes=dest.stat().st_size if present else None,
            partial_bytes=partial,
            partial_total=total if isinstance(total, int) else None,
        )
    if kind == "hub":
        snapshot = hub_snapshot(reference, revision, purpose, prefer_fp16)
        where = snapshot or hub_repo_folder(reference)
        return ModelEntry(
            **common,
            where=str(where),
            present=snapshot is not None,
            size_bytes=disk_size(snapshot) if snapshot else None,
        )
    path = Path(reference).expanduser()
    present = path.exists()
    return ModelEntry(
        **common,
        where=str(path.absolute()),
        present=present,
        size_bytes=disk_size(path) if present else None,
    )


def disk_size(path: Path) -> int:
    """Return the bytes a file or folder holds on disk (symlinked blobs counted once)."""
    if path.is_file():
        return path.stat().st_size
    seen: set[tuple[int, int]] = set()
    total = 0
    for file in path.rglob("*"):
        with contextlib.suppress(OSError):
            stat = file.stat()  # follows the snapshot's symlinks into blobs/
            if file.is_file() and (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def local_path(
    reference: str,
    *,
    purpose: Purpose,
    models_dir: Path,
    revision: str | None = None,
    prefer_fp16: bool = True,
) -> Path | None:
    """Return the local file or folder ``reference`` names when it is present, else None.

    Never touches the network: a hub id is looked up in the cache only.
    """
    kind = classify(reference)
    if kind == "url":
        dest = url_download_path(reference, models_dir)
        return dest if dest.is_file() else None
    if kind == "hub":
        return hub_snapshot(reference, revision, purpose, prefer_fp16)
    path = Path(reference).expanduser()
    return path if path.exists() else None


def require_local(
    reference: str,
    *,
    purpose: Purpose,
    setting: str,
    models_dir: Path = Path("models"),
    revision: str | None = None,
    prefer_fp16: bool = True,
) -> Path:
    """Return the local path of a hub id or URL; raises ``ModelMissing`` naming the pull command.

    A local path is returned as given (the caller checks what is in it).
    """
    kind = classify(reference)
    if kind == "path":
        return Path(reference).expanduser()
    found = local_path(
        reference,
        purpose=purpose,
        models_dir=models_dir,
        revision=revision,
        prefer_fp16=prefer_fp16,
    )
    if found is not None:
        return found
    if kind == "hub":
        at = f" at revision {revision}" if revision else ""
        raise ModelMissing(
            f"{setting}={reference}{at} is not downloaded (not in the Hugging Face cache "
            f"{hub_cache()}): fetch it with `{PULL_COMMAND}`"
        )
    raise ModelMissing(
        f"{setting}={display_reference(reference)} is not downloaded (expected "
        f"{url_download_path(reference, models_dir)}): fetch it with `{PULL_COMMAND}`"
    )


def model_folder(reference: str, revision: str | None, setting: str, purpose: Purpose) -> Path:
    """Return the mlx model folder ``reference`` names: a local folder or a downloaded hub id.

    Raises ``ModelMissing`` (naming the pull command) for a hub id not downloaded,
    ``ConfigurationError`` for a URL or a folder without ``config.json``.
    """
    kind = classify(reference)
    if kind == "url":
        raise ConfigurationError(
            f"{setting}={display_reference(reference)}: an mlx model is a folder (a local path "
            "or a Hugging Face id such as mlx-community/...), not a URL"
        )
    if kind == "hub":
        snapshot = hub_snapshot(reference, revision, purpose)
        if snapshot is None:
            at = f" at revision {revision}" if revision else ""
            raise ModelMissing(
                f"{setting}={reference}{at} is not an mlx model folder here and is not "
                f"downloaded (not in the Hugging Face cache {hub_cache()}): fetch it with "
                f"`{PULL_COMMAND}`"
            )
        return snapshot
    folder = Path(reference).expanduser()
    if not (folder / "config.json").is_file():
        raise ConfigurationError(
            f"{folder} is not an mlx model folder (no config.json); set {setting} to a model "
            "folder or a Hugging Face id"
        )
    return folder


def model_name(folder: Path) -> str:
    """Return a model folder's name for identities: ``org/name@commit`` for a hub snapshot."""
    parent = folder.parent
    if parent.name == "snapshots" and parent.parent.name.startswith("models--"):
        repo = parent.parent.name[len("models--") :].replace("--", "/")
        return f"{repo}@{folder.name[:12]}"
    return folder.name
