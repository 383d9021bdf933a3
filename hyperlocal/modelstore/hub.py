"""The Hugging Face cache: which files a purpose needs, and whether a snapshot holds them."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
from collections.abc import Iterable
from pathlib import Path

from hyperlocal.modelstore.references import Purpose


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
