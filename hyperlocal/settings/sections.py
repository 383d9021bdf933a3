"""The sections of the settings: one declared type per concern (text, image, vision ...).

Each field's description doubles as documentation and as the Prefect UI form's help.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hyperlocal.layout.designs import DESIGNS, DesignName
from hyperlocal.redaction import redact_urls

#: Text server presets: the usual local base URL of each OpenAI-compatible server.
TEXT_PROVIDER_URLS: dict[str, str] = {
    "vllm_mlx": "http://127.0.0.1:8000/v1",
    "mlx_lm": "http://127.0.0.1:8080/v1",
    "ollama": "http://127.0.0.1:11434/v1",
    "lmstudio": "http://127.0.0.1:1234/v1",
    "llamacpp": "http://127.0.0.1:8080/v1",
    "vllm": "http://127.0.0.1:8000/v1",
    "openai": "https://api.openai.com/v1",
}
TextProvider = Literal["vllm_mlx", "mlx_lm", "ollama", "lmstudio", "llamacpp", "vllm", "openai"]


def sha256_digest(value: str | None) -> str | None:
    """Return ``value`` as a lowercase sha256 hex digest; raises ``ValueError`` otherwise."""
    if value is None:
        return None
    digest = value.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{value!r} is not a sha256 digest (64 hexadecimal digits)")
    return digest


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr (logs, tracebacks, debuggers) shows URLs without their secrets;
        # SecretStr fields already show stars.
        for name, value in super().__repr_args__():
            yield name, redact_urls(value) if isinstance(value, str) else value


class TextSettings(_Section):
    """The model that writes the copy and art-directs the picture."""

    kind: Literal["auto", "builtin", "openai", "mlx"] = Field(
        default="auto",
        description="auto picks the best configured kind; builtin needs no model.",
    )
    provider: TextProvider | None = Field(
        default=None, description="Preset that fills the usual local base URL of a server."
    )
    base_url: str | None = Field(default=None, description="OpenAI-compatible server URL.")
    model: str | None = Field(
        default=None,
        description="Model name at the server, or for mlx in process a local folder or a "
        "Hugging Face id (fetched by python -m flows.models pull).",
    )
    revision: str | None = Field(
        default=None,
        description="Hugging Face revision (branch, tag or commit) of a hub model; unset: main.",
    )
    api_key: SecretStr | None = Field(default=None, description="API key, if the server needs one.")
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling share.")
    seed: int = Field(default=7, description="Sampling seed, so copy is reproducible.")
    max_tokens: int = Field(default=800, ge=16, le=32768, description="Longest answer, in tokens.")
    context_window: int = Field(
        default=8192, ge=512, description="The model's context window: prompts are fitted to it."
    )
    timeout_s: float = Field(
        default=120,
        gt=0,
        description="Seconds with no token arriving (the first token's wait includes reading "
        "the prompt); past it the stream is closed and the step retried. A whole answer may "
        "take timeout_s + 2 x max_tokens / the server's measured tokens per second.",
    )
    on_invalid_output: Literal["fail", "builtin"] = Field(
        default="fail",
        description="When the model gives no valid copy after its re-asks: fail the run, or "
        "use the builtin copywriter for that variant (recorded in the manifest).",
    )

    def effective_base_url(self) -> str | None:
        """Return the base URL: the explicit one, else the provider preset's, else None."""
        if self.base_url:
            return self.base_url
        return TEXT_PROVIDER_URLS.get(self.provider) if self.provider else None


class LoraSettings(_Section):
    """One LoRA applied on top of the diffusers image model."""

    path: str = Field(
        description="A LoRA .safetensors file, a folder holding one, a Hugging Face id, or an "
        "http(s) URL (fetched by python -m flows.models pull)."
    )
    sha256: str | None = Field(
        default=None, description="Expected sha256 of a LoRA downloaded from a URL (64 hex)."
    )
    strength: float = Field(default=1.0, ge=-4, le=4, description="How strongly it applies.")
    name: str | None = Field(default=None, description="Adapter name (default: the file stem).")

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        return sha256_digest(value)


ImageFlavor = Literal["auto", "base", "turbo", "lcm"]


class ImageSettings(_Section):
    """The model that paints the background."""

    kind: Literal["auto", "builtin", "diffusers", "a1111"] = Field(
        default="auto", description="auto picks the best configured kind; builtin needs no model."
    )
    model: str | None = Field(
        default=None,
        description="Model folder, .safetensors file, Hugging Face id, or http(s) URL of a "
        ".safetensors checkpoint (fetched by python -m flows.models pull).",
    )
    revision: str | None = Field(
        default=None,
        description="Hugging Face revision (branch, tag or commit) of a hub model; unset: main.",
    )
    sha256: str | None = Field(
        default=None, description="Expected sha256 of a model downloaded from a URL (64 hex)."
    )
    api_url: str | None = Field(default=None, description="AUTOMATIC1111-compatible API URL.")
    steps: int | None = Field(default=None, ge=1, le=150, description="Denoising steps.")
    cfg_scale: float | None = Field(default=None, ge=0, le=30, description="Guidance scale.")
    sampler: str | None = Field(default=None, description="Scheduler name, e.g. euler_a.")
    megapixels: float | None = Field(
        default=None, gt=0.05, le=4, description="Picture size budget in megapixels."
    )
    size: str | None = Field(
        default=None, description="Fixed WIDTHxHEIGHT for every picture (overrides megapixels)."
    )
    seed: int | None = Field(
        default=None,
        ge=-1,
        description="Base seed; unset derives one from the brief (reproducible), -1 draws one.",
    )
    timeout_s: float = Field(default=300, gt=0, description="Seconds to wait for one picture.")
    long_prompts: Literal["fit", "chunk"] = Field(
        default="fit",
        description="fit: drop the least important phrases to fit 77 tokens; chunk: send "
        "75-token chunks to backends that encode them (A1111 BREAK, compel).",
    )
    max_chunks: int = Field(default=3, ge=1, le=8, description="Chunks at most in chunk mode.")
    # The diffusers kind (in process).
    flavor: ImageFlavor = Field(
        default="auto",
        description="base, turbo or lcm: the sampling a model expects (guidance off and few "
        "steps for turbo and LCM); auto reads it from the model and its LoRAs.",
    )
    config: str | None = Field(
        default=None,
        description="For a single .safetensors checkpoint: a diffusers SDXL folder with its "
        "configs and tokenizers (model_index.json, unet/config.json ...).",
    )
    device: str = Field(
        default="auto", description="auto (cuda, then mps, then cpu), cuda, cuda:N, mps or cpu."
    )
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        default="auto", description="auto: float16 on GPUs, float32 on the CPU."
    )
    loras: list[LoraSettings] = Field(
        default_factory=list,
        description='LoRAs with a strength, e.g. [{"path": "loras/ink.safetensors", '
        '"strength": 0.8}]; one made for another model width is skipped with a warning.',
    )
    vae_tiling: bool = Field(
        default=False, description="Decode the picture in tiles (less memory)."
    )
    attention_slicing: bool = Field(
        default=False, description="Compute attention in slices (less memory, a little slower)."
    )
    cpu_offload: bool = Field(
        default=False, description="Keep idle model parts in CPU memory (GPU only; slower)."
    )
    max_batch: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="Pictures painted in one batch at most; unset: 4 on a GPU, 1 on the CPU.",
    )
    allow_download: bool = Field(
        default=False,
        description="Let a model id that is not a local path be fetched from the Hugging Face "
        "hub during a run; off, only local files are read.",
    )

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        return sha256_digest(value)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        text = value.strip().lower()
        base, _, index = text.partition(":")
        if base not in ("auto", "cuda", "mps", "cpu") or (index and not index.isdigit()):
            raise ValueError(f"{value!r} is not auto, cuda, cuda:N, mps or cpu")
        if index and base != "cuda":
            raise ValueError(f"{value!r}: only cuda takes a device number")
        return text

    @field_validator("size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = value.lower().replace(" ", "").split("x")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError(f"{value!r} is not WIDTHxHEIGHT, e.g. 1024x1024")
        width, height = (int(p) for p in parts)
        if width % 8 or height % 8 or not (64 <= width <= 4096 and 64 <= height <= 4096):
            raise ValueError(f"{value!r}: both sides must be multiples of 8 between 64 and 4096")
        return f"{width}x{height}"

    def fixed_size(self) -> tuple[int, int] | None:
        """Return the fixed ``(width, height)`` when ``size`` is set."""
        if not self.size:
            return None
        width, height = self.size.split("x")
        return int(width), int(height)


class VisionSettings(_Section):
    """The model that checks each picture."""

    kind: Literal["auto", "heuristic", "openai", "mlx"] = Field(
        default="auto", description="auto picks the best configured kind; heuristic needs no model."
    )
    base_url: str | None = Field(default=None, description="OpenAI-compatible vision server URL.")
    model: str | None = Field(
        default=None,
        description="Vision model name at the server, or for mlx in process a local folder or "
        "a Hugging Face id (fetched by python -m flows.models pull).",
    )
    revision: str | None = Field(
        default=None,
        description="Hugging Face revision (branch, tag or commit) of a hub model; unset: main.",
    )
    api_key: SecretStr | None = Field(default=None, description="API key, if the server needs one.")
    timeout_s: float = Field(
        default=120,
        gt=0,
        description="Seconds with no token of the verdict arriving (the first token's wait "
        "includes reading the prompt and the picture); past it the stream is closed.",
    )
    profile: Literal["fast", "balanced", "quality"] = Field(
        default="balanced",
        description="Pixels sent to the model: 256, 512 or 1280 patches of 28x28.",
    )
    max_in_flight: int = Field(
        default=4, ge=1, le=64, description="Most checks at the vision server at once."
    )
    max_tokens: int = Field(
        default=300, ge=16, le=4096, description="Most tokens of the model's verdict."
    )


class ModelsSettings(_Section):
    """Where models live on this machine and how ``python -m flows.models pull`` fetches them."""

    dir: Path = Field(
        default=Path("models"),
        description="Folder for models downloaded from URLs (<dir>/downloads/...); Hugging "
        "Face models go to the Hugging Face cache (HF_HUB_CACHE).",
    )
    hf_token: SecretStr | None = Field(
        default=None,
        description="Hugging Face token for gated or private models; unset: huggingface_hub's "
        "own (HF_TOKEN, hf auth login).",
    )
    download_token: SecretStr | None = Field(
        default=None,
        description="Bearer token sent with URL downloads (e.g. a Civitai API key); only over "
        "https, and never to another host after a redirect.",
    )
    allow_pull: bool = Field(
        default=False,
        description="Let a flyer run fetch missing models before it starts; off, a run that "
        "lacks a model stops and names python -m flows.models pull.",
    )


class QCSettings(_Section):
    """Checking pictures, and painting them again when they fail."""

    enabled: bool | None = Field(default=None, description="Check every picture before layout.")
    max_attempts: int | None = Field(
        default=None, ge=1, le=10, description="Pictures painted per variant and format at most."
    )
    min_score: float = Field(default=5.0, ge=1, le=10, description="Lowest passing score (1-10).")
    on_exhausted: Literal["best", "fail"] = Field(
        default="best",
        description="When every attempt fails: ship the best one flagged as failed, or fail.",
    )
    on_unavailable: Literal["fail", "warn"] = Field(
        default="fail",
        description="When the vision backend is down after its retries or gives no valid "
        "verdict: fail the run, or ship the picture unchecked, flagged in the manifest and on "
        "the command line.",
    )


class LayoutSettings(_Section):
    """Typesetting."""

    print_ppi: int | None = Field(
        default=None, ge=72, le=600, description="PNG resolution of print formats."
    )
    heading_font: str = Field(default="Fjalla One", description="Default headline font family.")
    body_font: str = Field(default="Source Sans Pro", description="Default body font family.")
    font_dirs: list[Path] = Field(
        default_factory=list,
        description="Folders of extra font files (.ttf, .otf, .ttc): their families may be "
        "named as fonts and set text the packaged fonts cannot draw (Arabic, Hebrew, CJK ...).",
    )
    template: Path | None = Field(
        default=None, description="A Typst template to use instead of templates/flyer.typ."
    )
    designs: list[DesignName] = Field(
        default_factory=lambda: list(DESIGNS),
        min_length=1,
        description="Layout designs the variants take in turn: frosted, split, scrim.",
    )
    print: bool = Field(
        default=False,
        description="Print-ready PDFs: picture bleeds 1/8 in (3 mm on ISO sizes) past the trim.",
    )
    crop_marks: bool = Field(
        default=False, description="Add crop marks outside the bleed (implies print)."
    )


class RetrySettings(_Section):
    """Retries of passing faults (timeouts, refused connections, HTTP 429/5xx)."""

    attempts: int = Field(default=3, ge=0, le=10, description="Retries after the first try.")
    delay_s: float = Field(default=2.0, ge=0, le=600, description="First backoff delay.")
    jitter: float = Field(default=0.5, ge=0, le=1, description="Random share added to delays.")


class ServersSettings(_Section):
    """The local model servers ``python -m flows.servers`` starts (text and vision)."""

    host: str = Field(default="127.0.0.1", description="Address the servers listen on.")
    text: Literal["mlx_lm", "vllm_mlx", "none"] = Field(
        default="mlx_lm",
        description="Server for text.model: mlx_lm (mlx_lm.server), vllm_mlx, or none.",
    )
    vision: Literal["mlx_vlm", "vllm_mlx", "none"] = Field(
        default="mlx_vlm",
        description="Server for vision.model: mlx_vlm (mlx_vlm.server), vllm_mlx, or none.",
    )
    text_port: int = Field(default=8080, ge=1, le=65535, description="Port of the text server.")
    vision_port: int = Field(default=8081, ge=1, le=65535, description="Port of the vision server.")
    startup_timeout_s: float = Field(
        default=600, gt=0, description="Seconds a server may take to load its model and answer."
    )
    log_dir: Path = Field(default=Path("logs"), description="Where each server's log goes.")


class ScheduleSettings(_Section):
    """The scheduled deployment: flyers for every brief in a folder, on a cron schedule."""

    cron: str = Field(default="0 9 * * 1", description="When to run (cron), e.g. Mondays 09:00.")
    timezone: str = Field(default="UTC", description="Time zone of the cron schedule.")
    briefs: Path = Field(default=Path("briefs"), description="Folder of brief files to make.")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone, e.g. Europe/London") from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a five-field cron expression, e.g. '0 9 * * 1'")
        return value
