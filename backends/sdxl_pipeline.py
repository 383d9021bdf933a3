"""Finding, checking and loading an SDXL pipeline for the diffusers image kind.

Everything a user can get wrong is checked here before any work starts, and
each mistake is one ``ConfigurationError`` line: a missing extra, an impossible
device or dtype, a model path that does not exist, a folder that is not an SDXL
pipeline, a single-file checkpoint without its config folder, a hub id or URL
not downloaded yet (``python -m flows.models pull`` fetches it). Loading reads
local files only unless ``image.allow_download`` is on.

The flavor of a model decides the sampling a user expects: SDXL base wants
20-40 steps with guidance; SDXL-Turbo one to four steps with guidance off; LCM
models (or an LCM LoRA) four to eight steps with the LCM scheduler.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hyperlocal import modelstore
from hyperlocal.errors import ConfigurationError, ModelMissing, first_line
from hyperlocal.files import write_atomic
from hyperlocal.settings import ImageSettings, ModelsSettings

Flavor = Literal["base", "turbo", "lcm"]
SourceKind = Literal["folder", "single_file", "hub"]

#: Our scheduler names (also A1111's sampler names, mapped in a1111_image).
SCHEDULERS: tuple[str, ...] = ("euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "lcm")
#: The scheduler each flavor wants when none is set: None keeps the model's own.
FLAVOR_SCHEDULER: dict[Flavor, str | None] = {"base": None, "turbo": "euler_a", "lcm": "lcm"}
#: (steps, guidance) per profile, used where the user did not set steps or cfg_scale.
FLAVOR_SAMPLING: dict[Flavor, dict[str, tuple[int, float]]] = {
    "base": {"preview": (15, 5.0), "balanced": (25, 6.0), "quality": (35, 6.5)},
    # SDXL-Turbo was distilled for 1-4 steps without classifier-free guidance.
    "turbo": {"preview": (2, 0.0), "balanced": (4, 0.0), "quality": (4, 0.0)},
    # An LCM-distilled UNet embeds the guidance scale (8 is its usual value); with an
    # LCM LoRA guidance is off (1.0), see lcm_guidance.
    "lcm": {"preview": (4, 8.0), "balanced": (6, 8.0), "quality": (8, 8.0)},
}
_EXTRA_HINT = "install the extra: pip install 'hyperlocal[diffusers]'"
_SDXL_PIPELINES = ("StableDiffusionXLPipeline",)
_SDXL_PARTS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")

log = logging.getLogger(__name__)


def require_extras() -> None:
    """Raise ``ConfigurationError`` naming what is missing of torch, diffusers, transformers."""
    missing = [
        name
        for name in ("torch", "diffusers", "transformers", "safetensors")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ConfigurationError(
            f"the diffusers image kind needs {', '.join(missing)}: {_EXTRA_HINT}"
        )


def quiet_library_logs() -> None:
    """Keep transformers' and diffusers' import notices and progress bars off the console.

    They print warnings at import (a missing torchvision, deprecations) and
    progress bars while loading, which would break the command line's one-line
    messages and its own progress display; real failures still raise.
    """
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()


@dataclass(frozen=True)
class Accelerators:
    """What torch sees on this machine: CUDA devices and Apple's Metal."""

    torch_version: str
    cuda_devices: int
    mps: bool


def _torch_fingerprint() -> str | None:
    """Which torch installation this is, without importing it (None: torch is missing)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin)
    return f"{origin}:{origin.stat().st_mtime_ns}"


def _probe_accelerators() -> Accelerators:
    import torch

    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return Accelerators(torch_version=torch.__version__, cuda_devices=count, mps=mps)


def accelerators(memo: Path | None = None) -> Accelerators:
    """Return what torch sees here; from ``memo`` when this torch installation wrote it.

    Importing torch takes seconds, and a run whose pictures all come from the cache
    (or from model workers) needs only the device's name for its cache keys: the
    first process on a machine asks torch and records the answer in ``memo``
    (a JSON file keyed by the torch installation), later ones read it. A memo that
    cannot be read or written is ignored.
    """
    fingerprint = _torch_fingerprint()
    if memo is not None and fingerprint is not None:
        try:
            recorded = json.loads(memo.read_text(encoding="utf-8"))
            if recorded.get("torch") == fingerprint:
                return Accelerators(**recorded["accelerators"])
        except (OSError, ValueError, TypeError, KeyError):
            pass
    found = _probe_accelerators()
    if memo is not None and fingerprint is not None:
        record = {"torch": fingerprint, "accelerators": found.__dict__}
        with contextlib.suppress(OSError):
            memo.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(memo, json.dumps(record).encode())
    return found


def pick_device(wanted: str, memo: Path | None = None) -> str:
    """Return the torch device for ``wanted`` (auto: cuda, then mps, then cpu).

    ``memo``: see ``accelerators``. Raises ``ConfigurationError`` for a device this
    machine or this torch build lacks.
    """
    if wanted == "cpu":
        return wanted
    seen = accelerators(memo)
    cuda, mps = seen.cuda_devices > 0, seen.mps
    if wanted == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    base, _, index = wanted.partition(":")
    if base == "cuda":
        if not cuda:
            raise ConfigurationError(
                f"HYPERLOCAL_IMAGE__DEVICE={wanted}, but torch {seen.torch_version} sees no CUDA "
                "device: set it to auto or cpu, or install a CUDA build of torch"
            )
        if index and int(index) >= seen.cuda_devices:
            raise ConfigurationError(
                f"HYPERLOCAL_IMAGE__DEVICE={wanted}, but this machine has "
                f"{seen.cuda_devices} CUDA device(s) (cuda:0 ...)"
            )
    if base == "mps" and not mps:
        raise ConfigurationError(
            "HYPERLOCAL_IMAGE__DEVICE=mps, but Apple's Metal (MPS) is not available here: "
            "set it to auto or cpu"
        )
    return wanted


def pick_dtype(wanted: str, device: str) -> str:
    """Return the dtype name for ``device`` (auto: float16 on GPUs, float32 on the CPU).

    Raises ``ConfigurationError`` for float16 on the CPU (slow, and unsupported by
    several operations there).
    """
    if wanted == "auto":
        return "float32" if device == "cpu" else "float16"
    if wanted == "float16" and device == "cpu":
        raise ConfigurationError(
            "HYPERLOCAL_IMAGE__DTYPE=float16 does not run on the CPU: use float32 or bfloat16"
        )
    return wanted


@dataclass(frozen=True)
class ModelSource:
    """Where the SDXL weights come from, checked to exist and to be SDXL."""

    kind: SourceKind
    location: str
    config: str | None = None

    @property
    def tokenizer_folder(self) -> Path | None:
        """The folder holding ``tokenizer/`` and ``tokenizer_2/``, when one is local."""
        folder = self.location if self.kind == "folder" else self.config
        return Path(folder) if folder and Path(folder).is_dir() else None


def _check_folder(folder: Path, what: str) -> None:
    index = folder / "model_index.json"
    if not index.is_file():
        raise ConfigurationError(
            f"{what} {folder} is not a diffusers pipeline folder (no model_index.json): "
            "point HYPERLOCAL_IMAGE__MODEL at an SDXL folder or a .safetensors checkpoint"
        )
    try:
        name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
    except (ValueError, AttributeError):
        raise ConfigurationError(f"{index} is not valid JSON") from None
    if name not in _SDXL_PIPELINES:
        raise ConfigurationError(
            f"{what} {folder} is not an SDXL pipeline: its model_index.json names "
            f"{name or 'no pipeline'}, not StableDiffusionXLPipeline"
        )
    missing = [part for part in _SDXL_PARTS if not (folder / part).is_dir()]
    if missing:
        raise ConfigurationError(f"{what} {folder} lacks {', '.join(missing)}/")


def locate_model(image: ImageSettings) -> ModelSource:
    """Return where ``image.model`` is, checked; raises ``ConfigurationError`` in one line."""
    if not image.model:
        raise ConfigurationError(
            "the diffusers image kind needs a model: set HYPERLOCAL_IMAGE__MODEL to an SDXL "
            "folder (diffusers format) or a .safetensors checkpoint"
        )
    path = Path(image.model).expanduser()
    if path.is_dir():
        _check_folder(path, "model folder")
        return ModelSource(kind="folder", location=str(path.absolute()))
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ConfigurationError(
                f"{path} is a {path.suffix or 'suffix-less'} file: only .safetensors checkpoints "
                "are loaded (pickled .ckpt files can run code; convert them first)"
            )
        if image.config:
            config = Path(image.config).expanduser()
            _check_folder(config, "HYPERLOCAL_IMAGE__CONFIG folder")
            return ModelSource("single_file", str(path.absolute()), str(config.absolute()))
        if not image.allow_download:
            raise ConfigurationError(
                f"the single-file checkpoint {path.name} needs its config folder: set "
                "HYPERLOCAL_IMAGE__CONFIG to a diffusers SDXL folder (e.g. a download of "
                "stabilityai/stable-diffusion-xl-base-1.0 without its weights), or "
                "HYPERLOCAL_IMAGE__ALLOW_DOWNLOAD=true to fetch the configs"
            )
        return ModelSource(kind="single_file", location=str(path.absolute()))
    if modelstore.is_path_like(image.model):
        raise ConfigurationError(f"HYPERLOCAL_IMAGE__MODEL: no such file or folder: {path}")
    return _hub_source(image)


def _hub_source(image: ImageSettings) -> ModelSource:
    """A Hugging Face id: its cached snapshot, or (when allowed) a download later."""
    model = str(image.model)
    fp16 = image.dtype in ("auto", "float16")
    cached = modelstore.hub_snapshot(model, image.revision, "sdxl", prefer_fp16=fp16)
    if cached:
        _check_folder(cached, f"cached {model}:")
        return ModelSource(kind="folder", location=str(cached))
    if not image.allow_download:
        at = f" at revision {image.revision}" if image.revision else ""
        raise ModelMissing(
            f"HYPERLOCAL_IMAGE__MODEL={model}{at} is not a local folder or file and is not in "
            f"the Hugging Face cache: fetch it with `{modelstore.PULL_COMMAND}` (or set "
            "HYPERLOCAL_MODELS__ALLOW_PULL=true; HYPERLOCAL_IMAGE__ALLOW_DOWNLOAD=true lets "
            "diffusers fetch it itself)"
        )
    return ModelSource(kind="hub", location=model)


def localized(image: ImageSettings, models: ModelsSettings) -> ImageSettings:
    """Return ``image`` with URL and hub references replaced by their downloaded files.

    The model may be a URL (its download), the config folder a hub id (its
    snapshot), each LoRA a URL or a hub id. Raises ``ModelMissing`` naming
    ``python -m flows.models pull`` for one that is not downloaded. A hub id as
    the model is left to ``locate_model`` (it may be downloaded by diffusers when
    ``image.allow_download``).
    """
    update: dict[str, Any] = {}
    if image.model and modelstore.classify(image.model) == "url":
        update["model"] = str(
            modelstore.require_local(
                image.model,
                purpose="sdxl",
                setting="HYPERLOCAL_IMAGE__MODEL",
                models_dir=models.dir,
            )
        )
    if image.config and modelstore.classify(image.config) != "path":
        update["config"] = str(
            modelstore.require_local(
                image.config,
                purpose="sdxl-config",
                setting="HYPERLOCAL_IMAGE__CONFIG",
                models_dir=models.dir,
            )
        )
    loras = []
    for lora in image.loras:
        if modelstore.classify(lora.path) == "path":
            loras.append(lora)
            continue
        local = modelstore.require_local(
            lora.path, purpose="lora", setting="HYPERLOCAL_IMAGE__LORAS", models_dir=models.dir
        )
        loras.append(lora.model_copy(update={"path": str(local)}))
    if loras != image.loras:
        update["loras"] = loras
    return image.model_copy(update=update) if update else image


def source_revision(source: ModelSource) -> str:
    """Return a short digest that changes when the model's files change.

    Config files are hashed whole; weight files by name and size (hashing
    gigabytes on every run would cost more than the cache saves).
    """
    digest = hashlib.sha256(f"{source.kind}:{source.location}".encode())
    roots = [Path(p) for p in (source.location, source.config) if p]
    for root in roots:
        files = sorted(root.rglob("*")) if root.is_dir() else [root] if root.is_file() else []
        for file in files:
            if not file.is_file():
                continue
            digest.update(str(file.relative_to(root.parent)).encode())
            if file.suffix in (".json", ".txt"):
                digest.update(file.read_bytes())
            else:
                digest.update(str(file.stat().st_size).encode())
    return digest.hexdigest()[:16]


def read_unet_config(source: ModelSource) -> dict[str, Any]:
    """Return the UNet's config.json (empty when only the hub has it)."""
    folder = source.tokenizer_folder
    file = folder / "unet" / "config.json" if folder else None
    if file is None or not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def detect_flavor(image: ImageSettings, source: ModelSource) -> Flavor:
    """Return the model's flavor: the setting, else read from its UNet, name and LoRAs."""
    if image.flavor != "auto":
        return image.flavor
    if read_unet_config(source).get("time_cond_proj_dim") is not None:
        return "lcm"
    if any("lcm" in Path(lora.path).name.lower() for lora in image.loras):
        return "lcm"
    # SDXL-Lightning samples as Turbo does: few trailing steps, guidance off. A hub
    # snapshot's folder is a commit hash: its name is in the setting.
    names = f"{Path(source.location).name} {image.model or ''}".lower()
    if any(word in names for word in ("turbo", "lightning")):
        return "turbo"
    return "base"


def lcm_guidance(source: ModelSource) -> float:
    """Return the LCM guidance: embedded 8.0 for a distilled UNet, 1.0 (off) for a LoRA."""
    return 8.0 if read_unet_config(source).get("time_cond_proj_dim") is not None else 1.0


def make_scheduler(name: str, current: Any, flavor: Flavor) -> Any:
    """Return scheduler ``name`` built from the pipeline's ``current`` scheduler config.

    Few-step flavors (turbo, lcm) use ``trailing`` timesteps, which they were
    distilled with. Raises ``ConfigurationError`` for an unknown name.
    """
    from diffusers import (
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        LCMScheduler,
    )

    key = name.strip().lower().replace(" ", "_").replace("+", "p")
    classes: dict[str, tuple[Any, dict[str, Any]]] = {
        "euler": (EulerDiscreteScheduler, {}),
        "euler_a": (EulerAncestralDiscreteScheduler, {}),
        "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
        "dpmpp_2m_karras": (
            DPMSolverMultistepScheduler,
            {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True},
        ),
        "lcm": (LCMScheduler, {}),
    }
    if key not in classes:
        raise ConfigurationError(
            f"HYPERLOCAL_IMAGE__SAMPLER={name!r} is not a scheduler of the diffusers kind: "
            f"use one of {', '.join(SCHEDULERS)}"
        )
    cls, options = classes[key]
    if flavor in ("turbo", "lcm"):
        options = {**options, "timestep_spacing": "trailing"}
    return cls.from_config(current.config, **options)


def torch_dtype(name: str) -> Any:
    """Return the torch dtype called ``name``."""
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def load_pipeline(source: ModelSource, dtype: str, allow_download: bool) -> Any:
    """Load the SDXL pipeline from ``source`` (local files only unless allowed).

    Raises ``ConfigurationError`` when the files do not load as SDXL.
    """
    from diffusers import StableDiffusionXLPipeline

    quiet_library_logs()
    options: dict[str, Any] = {
        "dtype": torch_dtype(dtype),
        "local_files_only": not allow_download,
    }
    try:
        if source.kind == "single_file":
            if source.config:
                options["config"] = source.config
            pipe = StableDiffusionXLPipeline.from_single_file(source.location, **options)
        else:
            # A pull keeps only the fp16 variant of weights that have one.
            variant = modelstore.sdxl_folder_variant(Path(source.location))
            if variant:
                options["variant"] = variant
            pipe = StableDiffusionXLPipeline.from_pretrained(source.location, **options)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise ConfigurationError(
            f"cannot load the SDXL model {source.location}: {first_line(exc, limit=300)}"
        ) from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


def memory_bytes(source: ModelSource) -> int:
    """Return an estimate of the model's memory: its weight files' size."""
    from backends.loaded_models import folder_size

    path = Path(source.location)
    if path.is_file():
        return path.stat().st_size
    return folder_size(path) if path.is_dir() else 7 * 1024**3
