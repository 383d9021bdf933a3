"""The image backend that runs SDXL in this process with diffusers (CUDA, Apple MPS or CPU).

Built once per process by the registry; every check a user can fail (extras,
device, dtype, model path, scheduler, LoRA files) runs when it is built, before
any work. The pipeline itself is loaded at the first picture, through the
shared ``LoadedModels`` (once per process, evicted under the memory budget),
and every call on a device holds that device's lock. Pictures asked for at the
same time with the same size and sampling are painted as one batch
(``image.max_batch``: 4 on a GPU, 1 on the CPU unless set).

Reproducible: each picture gets its own ``torch.Generator`` on the CPU seeded
with the request's seed, so the starting noise is the same on every device and
in every batch position. Alone (``max_batch = 1``) the same seed, prompt, model
and settings give byte-identical pixels on one device; in a batch of several the
pixels can differ from the lone picture in the lowest bits (batched matrix
products round differently).

Out of GPU memory, a batch is painted again once, one picture at a time, with
attention slicing and VAE tiling on; if that also runs out, the error says how
to use less memory.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backends.base import Health, ImageRequest
from backends.image_batching import MicroBatcher
from backends.loaded_models import shared_models
from backends.sdxl_loras import AppliedLora, attach_loras, lora_file
from backends.sdxl_pipeline import (
    FLAVOR_SAMPLING,
    FLAVOR_SCHEDULER,
    SCHEDULERS,
    Flavor,
    ModelSource,
    detect_flavor,
    lcm_guidance,
    load_pipeline,
    localized,
    locate_model,
    make_scheduler,
    memory_bytes,
    pick_device,
    pick_dtype,
    quiet_library_logs,
    require_extras,
    source_revision,
)
from backends.sdxl_prompts import PromptEncoder, sdxl_syntax
from hyperlocal.errors import ConfigurationError, first_line
from hyperlocal.models import BackendIdentity, GeneratedImage, PromptSyntax
from hyperlocal.prompts.clip_tokens import EncodeCounter, TokenCounter, clip_counter
from hyperlocal.settings import ImageSettings, Settings

log = logging.getLogger(__name__)

#: How long the first of several concurrent requests waits for the others to join its batch.
BATCH_WAIT_S = 0.1
_OOM_HINT = (
    "set HYPERLOCAL_IMAGE__CPU_OFFLOAD=true, a smaller HYPERLOCAL_IMAGE__MEGAPIXELS, "
    "HYPERLOCAL_IMAGE__MAX_BATCH=1, or close other programs on the GPU"
)

_device_locks: dict[str, threading.Lock] = {}
_device_locks_guard = threading.Lock()

#: What torch saw on this machine, in the cache folder: a run whose pictures are all
#: cached names its device without importing torch (``sdxl_pipeline.accelerators``).
DEVICE_MEMO = "accelerators.json"


def device_lock(device: str) -> threading.Lock:
    """Return the lock that serializes generation on ``device`` across backends."""
    with _device_locks_guard:
        return _device_locks.setdefault(device, threading.Lock())


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch running out of device memory (CUDA or MPS)."""
    import torch

    out_of_memory = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(exc, out_of_memory):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _free_device_memory(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    elif device == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


@dataclass
class _Loaded:
    """A loaded pipeline with its prompt encoder and the LoRAs that applied."""

    pipe: Any
    encoder: PromptEncoder
    loras: list[AppliedLora]
    low_memory: bool = False


class DiffusersImageBackend:
    """SDXL, SDXL-Turbo and LCM pictures from diffusers, in process."""

    def __init__(
        self,
        image: ImageSettings,
        source: ModelSource,
        *,
        device: str,
        dtype: str,
        flavor: Flavor,
        scheduler: str | None,
        steps: int | None,
        cfg_scale: float | None,
        memory_gb: float,
    ) -> None:
        """Prepare the backend; the pipeline loads at the first picture."""
        self.image = image
        self.source = source
        self.device = device
        self.dtype = dtype
        self.flavor = flavor
        self.scheduler = scheduler
        #: The flavor's steps and guidance, where the user set none (else None).
        self.default_steps = steps
        self.default_cfg = cfg_scale
        self.memory_gb = memory_gb
        gpu = device != "cpu"
        self.max_batch = image.max_batch or (4 if gpu else 1)
        self._batcher: MicroBatcher[ImageRequest, GeneratedImage] = MicroBatcher(
            self._paint,
            key=self._batch_key,
            max_batch=self.max_batch,
            wait_s=BATCH_WAIT_S,
            device=device_lock(device),
        )
        self._counters: list[TokenCounter] | None = None
        self._counters_lock = threading.Lock()
        loras = [
            f"{lora_file(lora).name}@{lora.strength:g}" for lora in image.loras
        ]  # checks every LoRA file exists, before any work
        params: dict[str, str | int | float | bool | None] = {
            "flavor": flavor,
            "scheduler": scheduler or "model default",
            "dtype": dtype,
            # Pixels differ between device types; not between two GPUs of one type.
            "device": device.split(":")[0],
            "steps": steps,
            "cfg_scale": cfg_scale,
            "loras": ", ".join(loras) or None,
            "vae_tiling": image.vae_tiling,
            "attention_slicing": image.attention_slicing,
        }
        self._identity = BackendIdentity(
            role="image",
            kind="diffusers",
            model=source.location,
            revision=source_revision(source),
            params=params,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> DiffusersImageBackend:
        """Build the backend from settings, checking everything that can be checked now.

        Raises ``ConfigurationError`` (one line) for a missing extra, device, model
        file, non-SDXL folder, unknown scheduler or missing LoRA file.
        """
        require_extras()
        # URL and hub references become their downloaded files (or a ModelMissing line).
        image = localized(settings.image, settings.models)
        source = locate_model(image)
        device = pick_device(image.device, memo=settings.cache_dir / DEVICE_MEMO)
        dtype = pick_dtype(image.dtype, device)
        if image.cpu_offload and not device.startswith("cuda"):
            raise ConfigurationError(
                "HYPERLOCAL_IMAGE__CPU_OFFLOAD needs a CUDA device; this run paints on "
                f"{device}: turn it off"
            )
        flavor = detect_flavor(settings.image, source)  # names as the user wrote them
        scheduler = image.sampler or FLAVOR_SCHEDULER[flavor]
        if scheduler is not None and scheduler.strip().lower() not in SCHEDULERS:
            raise ConfigurationError(
                f"HYPERLOCAL_IMAGE__SAMPLER={scheduler!r} is not a scheduler of the diffusers "
                f"kind: use one of {', '.join(SCHEDULERS)}"
            )
        steps, cfg = FLAVOR_SAMPLING[flavor][settings.profile]
        if flavor == "lcm":
            cfg = lcm_guidance(source)
        user_set = image.model_fields_set
        return cls(
            image,
            source,
            device=device,
            dtype=dtype,
            flavor=flavor,
            scheduler=scheduler.strip().lower() if scheduler else None,
            steps=None if "steps" in user_set else steps,
            cfg_scale=None if "cfg_scale" in user_set else cfg,
            memory_gb=settings.models_memory_gb,
        )

    def __repr__(self) -> str:
        return f"DiffusersImageBackend(model={self.source.location!r}, device={self.device!r})"

    @property
    def identity(self) -> BackendIdentity:
        """Kind, model, revision and everything that changes the pixels besides the request."""
        return self._identity

    @property
    def prompt_syntax(self) -> PromptSyntax:
        """Two prompts (one per SDXL text encoder), compel weights and chunks when installed."""
        return sdxl_syntax()

    def token_counters(self) -> list[TokenCounter]:
        """Return the model's own two tokenizers (loaded alone, without the weights).

        Falls back to the real CLIP BPE when the tokenizers are not local files yet.
        """
        with self._counters_lock:
            if self._counters is None:
                self._counters = self._load_counters()
            return self._counters

    def _load_counters(self) -> list[TokenCounter]:
        folder = self.source.tokenizer_folder
        if folder is None or not (folder / "tokenizer_2").is_dir():
            return [clip_counter(), clip_counter()]
        from transformers import CLIPTokenizer

        quiet_library_logs()
        counters: list[TokenCounter] = []
        for part in ("tokenizer", "tokenizer_2"):
            tokenizer = CLIPTokenizer.from_pretrained(str(folder / part), local_files_only=True)

            def encode(text: str, tokenizer: Any = tokenizer) -> list[int]:
                return list(tokenizer(text, truncation=False)["input_ids"])

            counters.append(EncodeCounter(f"{part} of {folder.name}", encode))
        return counters

    # -- painting -------------------------------------------------------------------------

    def sampling(self, request: ImageRequest) -> tuple[int, float]:
        """Return the steps and guidance used for ``request`` (the flavor's, unless set)."""
        steps = self.default_steps if self.default_steps is not None else request.steps
        cfg = self.default_cfg if self.default_cfg is not None else request.cfg_scale
        return steps, cfg

    def _batch_key(self, request: ImageRequest) -> tuple[Any, ...]:
        return (request.width, request.height, *self.sampling(request), request.prompt.syntax)

    def generate(self, request: ImageRequest) -> GeneratedImage:
        """Return one PNG of the requested size painted with the request's seed.

        Raises ``ConfigurationError`` for a side that is not a multiple of 8, for
        a model that does not load, and for running out of memory twice.
        """
        if request.width % 8 or request.height % 8:
            raise ConfigurationError(
                f"SDXL paints sides that are multiples of 8, not {request.width}x"
                f"{request.height}: set HYPERLOCAL_IMAGE__SIZE or HYPERLOCAL_IMAGE__MEGAPIXELS"
            )
        return self._batcher.submit(request, prepare=self.loaded)

    @property
    def queued(self) -> int:
        """How many requests wait for the device now."""
        return self._batcher.queued

    @property
    def batch_sizes(self) -> list[int]:
        """How many pictures each pipeline call painted so far."""
        return self._batcher.batch_sizes

    def loaded(self) -> _Loaded:
        """Return the loaded pipeline, loading it the first time (counted by the registry)."""
        entry = shared_models(self.memory_gb).get(
            self._model_key(), self._load, memory_bytes(self.source)
        )
        return entry.value  # type: ignore[no-any-return]

    @property
    def loads(self) -> int:
        """How many times this process loaded this backend's pipeline."""
        return shared_models(self.memory_gb).loads.get(self._model_key(), 0)

    def _model_key(self) -> str:
        return f"diffusers:{self._identity.model_dump_json()}:{self.image.cpu_offload}"

    def _load(self) -> _Loaded:
        started = time.monotonic()
        pipe = load_pipeline(self.source, self.dtype, self.image.allow_download)
        if self.scheduler:
            pipe.scheduler = make_scheduler(self.scheduler, pipe.scheduler, self.flavor)
        applied = attach_loras(pipe, self.image.loras)
        if self.image.attention_slicing:
            pipe.enable_attention_slicing()
        if self.image.vae_tiling:
            pipe.vae.enable_tiling()
        if self.image.cpu_offload:
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        log.info(
            "loaded %s on %s (%s, %s flavor) in %.1f s",
            self.source.location,
            self.device,
            self.dtype,
            self.flavor,
            time.monotonic() - started,
        )
        return _Loaded(pipe=pipe, encoder=PromptEncoder(pipe, self.device), loras=applied)

    def _paint(self, requests: Sequence[ImageRequest]) -> list[GeneratedImage]:
        """Paint ``requests`` (same size and sampling) in one pipeline call (device lock held)."""
        loaded = self.loaded()
        try:
            pictures = self._call(loaded, requests)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            oom = first_line(exc)
        else:
            return self._images(pictures, requests)
        # Out of memory: free what the failed call held, then retry lean, one by one.
        _free_device_memory(self.device)
        log.warning("out of memory painting %d picture(s); retrying lean", len(requests))
        self._lean(loaded)
        try:
            pictures = [self._call(loaded, [r])[0] for r in requests]
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            _free_device_memory(self.device)
            raise ConfigurationError(
                f"out of memory painting {requests[0].width}x{requests[0].height} on "
                f"{self.device} even with attention slicing and VAE tiling ({oom}): {_OOM_HINT}"
            ) from None
        return self._images(pictures, requests)

    def _lean(self, loaded: _Loaded) -> None:
        if loaded.low_memory:
            return
        loaded.pipe.enable_attention_slicing()
        loaded.pipe.vae.enable_tiling()
        loaded.low_memory = True

    def _call(self, loaded: _Loaded, requests: Sequence[ImageRequest]) -> list[Any]:
        import torch

        steps, cfg = self.sampling(requests[0])
        # CPU generators: the same starting noise for a seed on every device.
        generators = [torch.Generator("cpu").manual_seed(r.seed) for r in requests]
        arguments = loaded.encoder.arguments([r.prompt for r in requests])
        with torch.inference_mode():
            output = loaded.pipe(
                **arguments,
                num_inference_steps=steps,
                guidance_scale=cfg,
                width=requests[0].width,
                height=requests[0].height,
                generator=generators,
                output_type="pil",
            )
        return list(output.images)

    def _images(
        self, pictures: Sequence[Any], requests: Sequence[ImageRequest]
    ) -> list[GeneratedImage]:
        images: list[GeneratedImage] = []
        for picture, request in zip(pictures, requests, strict=True):
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            images.append(
                GeneratedImage(
                    png=buffer.getvalue(),
                    width=picture.width,
                    height=picture.height,
                    seed=request.seed,
                    attempt=request.attempt,
                    backend=self._identity,
                )
            )
        return images

    # -- health ---------------------------------------------------------------------------

    def health(self) -> Health:
        """Say which model, device, flavor and sampling will paint; never loads the weights."""
        steps = self.default_steps if self.default_steps is not None else "profile"
        cfg = self.default_cfg if self.default_cfg is not None else "profile"
        state = "loaded" if self.loads else "loads at the first picture"
        detail = (
            f"{self.source.location} on {self.device} ({self.dtype}); {self.flavor} flavor, "
            f"{self.scheduler or 'model scheduler'}, steps {steps}, guidance {cfg}, "
            f"batch {self.max_batch}; {state}"
        )
        return Health(
            role="image", kind="diffusers", ok=True, detail=detail, models=[self.source.location]
        )
