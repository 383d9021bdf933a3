"""Where models live on this machine.

A model reference in settings is one of three kinds:

- a local path (it exists, or looks like one: starts with ``/``, ``.`` or ``~``,
  or ends in a weights suffix such as ``.safetensors``);
- an http(s) URL of a single ``.safetensors`` file (a Civitai download link, say),
  downloaded to ``<models.dir>/downloads/<name>-<8 hex of the URL's sha256>.safetensors``;
- a Hugging Face repository id (``org/name``), kept in the Hugging Face cache
  (``HF_HUB_CACHE``) at the revision the settings pin.

``ModelEntry`` says where one reference is expected and whether it is there.
Fetching is ``hyperlocal.modelstore.download``; checking files against their recorded
digests is ``hyperlocal.modelstore.verify``. Nothing here touches the network or is
called implicitly by a run: a missing model is a ``ModelMissing`` error naming
``PULL_COMMAND``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel

from hyperlocal.errors import ConfigurationError, ModelMissing
from hyperlocal.redaction import redact_url
from hyperlocal.settings import ModelsSettings

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


# -- references -----------------------------------------------------------------------------


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


# -- the Hugging Face cache -----------------------------------------------------------------


def hub_cache() -> Path:
    """Return the Hugging Face cache folder (``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    if importlib.util.find_spec("huggingface_hub") is not None:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or str(Path("~/.cache/huggingface").expanduser())
    return Path(home) / "hub"


def hub_repo_folder(repo_id: str) -> Path:
    """Return the cache folder of a model repository (``models--org--name``)."""
    return hub_cache() / ("models--" + repo_id.replace("/", "--"))


_MLX_LM_PATTERNS = (
    "*.json",
    "model*.safetensors",
    "*.py",
    "tokenizer.model",
    "*.tiktoken",
    "tiktoken.model",
    "*.txt",
    "*.jsonl",
    "*.jinja",
)
_MLX_VLM_PATTERNS = (
    "*.json",
    "*.jsonl",
    "*.safetensors",
    "*.py",
    "*.model",
    "*.tiktoken",
    "*.txt",
    "*.jinja",
)
#: The parts of a diffusers SDXL folder that StableDiffusionXLPipeline loads.
SDXL_COMPONENTS = (
    "unet",
    "vae",
    "text_encoder",
    "text_encoder_2",
    "tokenizer",
    "tokenizer_2",
    "scheduler",
)
_VARIANT = re.compile(r"\.(\w+?)(?:-\d+-of-\d+)?\.safetensors$")
_INDEX_VARIANT = re.compile(r"\.safetensors\.index(?:\.(\w+))?\.json$")


def _weights_variant(name: str) -> str | None:
    """Return the diffusers variant of a weights or index file name (fp16), None for none."""
    index = _INDEX_VARIANT.search(name)
    if index:
        return index.group(1)
    base = name.rsplit("/", 1)[-1]
    match = _VARIANT.search(base)
    return match.group(1) if match and base.count(".") >= 2 else None


def _is_weights(name: str) -> bool:
    return name.endswith(".safetensors") or _INDEX_VARIANT.search(name) is not None


def select_hub_files(purpose: Purpose, files: Iterable[str], prefer_fp16: bool = True) -> list[str]:
    """Return the files of a repository that ``purpose`` needs, sorted.

    mlx models: what mlx-lm and mlx-vlm fetch themselves. SDXL (diffusers): the
    pipeline's index and its seven components' configs and tokenizer files, and
    per component the safetensors weights: the fp16 variant when the folder has
    one and ``prefer_fp16`` (half the download; diffusers upcasts on the CPU),
    else the plain weights. Never pickles (.bin, .ckpt), ONNX, Flax, TensorFlow,
    extra folders (``vae_1_0``) or root-level single-file checkpoints.
    ``sdxl-config``: the same without weights. ``lora``: root-level safetensors.
    """
    names = sorted(set(files))
    if purpose in ("mlx-lm", "mlx-vlm"):
        patterns = _MLX_LM_PATTERNS if purpose == "mlx-lm" else _MLX_VLM_PATTERNS
        return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if purpose == "lora":
        return [n for n in names if "/" not in n and n.endswith(".safetensors")]
    chosen = [n for n in names if n == "model_index.json"]
    for component in SDXL_COMPONENTS:
        inside = [n for n in names if n.startswith(component + "/") and n.count("/") == 1]
        chosen += [n for n in inside if n.endswith((".json", ".txt")) and not _is_weights(n)]
        if purpose == "sdxl-config":
            continue
        weights = [n for n in inside if _is_weights(n)]
        half = [n for n in weights if _weights_variant(n) == "fp16"]
        plain = [n for n in weights if _weights_variant(n) is None]
        chosen += half if half and (prefer_fp16 or not plain) else plain
    return sorted(chosen)


def sdxl_folder_variant(folder: Path) -> str | None:
    """Return "fp16" when a component of a diffusers folder holds only fp16 variant weights.

    A pull keeps only the fp16 files of a component that has them, so the loader
    must ask for that variant (diffusers looks for plain weights otherwise).
    """
    for component in SDXL_COMPONENTS:
        names = [p.name for p in (folder / component).glob("*.safetensors")]
        if names and all(_weights_variant(name) == "fp16" for name in names):
            return "fp16"
    return None


def literal_pattern(name: str) -> str:
    """Return an fnmatch pattern that matches ``name`` only."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _cached_repo_files(repo_id: str, revision: str | None) -> list[str] | None:
    """Return the repository's file list as cached by a previous pull (no network), or None."""
    try:
        from huggingface_hub import get_cached_repo_tree  # huggingface_hub >= 1.x
    except ImportError:
        return None
    try:
        return [f.path for f in get_cached_repo_tree(repo_id, revision=revision)]
    except Exception:  # no listing cached, or an older cache layout: not knowable offline
        return None


def _marker_present(folder: Path, purpose: Purpose) -> bool:
    if purpose in ("mlx-lm", "mlx-vlm"):
        return (folder / "config.json").is_file()
    if purpose in ("sdxl", "sdxl-config"):
        return (folder / "model_index.json").is_file()
    return any(folder.glob("*.safetensors"))


def hub_snapshot(
    repo_id: str, revision: str | None, purpose: Purpose, prefer_fp16: bool = True
) -> Path | None:
    """Return the cached snapshot folder of ``repo_id`` at ``revision``, or None.

    Never touches the network. A snapshot counts only when it is complete: every
    file ``purpose`` needs is there (checked against the listing the pull cached,
    when there is one) and the folder has its marker file (``config.json`` for
    mlx, ``model_index.json`` for SDXL).
    """
    if importlib.util.find_spec("huggingface_hub") is None:
        return None
    from huggingface_hub import snapshot_download

    files = _cached_repo_files(repo_id, revision)
    allow = None
    if files is not None:
        allow = [literal_pattern(n) for n in select_hub_files(purpose, files, prefer_fp16)] or None
    try:
        folder = snapshot_download(
            repo_id, revision=revision, local_files_only=True, allow_patterns=allow
        )
    except (FileNotFoundError, ValueError, OSError):
        return None  # not cached, incomplete (IncompleteSnapshotError), or not a valid id
    path = Path(folder)
    return path if _marker_present(path, purpose) else None


# -- entries --------------------------------------------------------------------------------


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


def human_bytes(count: int | None) -> str:
    """Return ``count`` bytes as a short human size (``4.0 MB``)."""
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


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
