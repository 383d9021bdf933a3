"""Settings: one declared type, read from the environment, `.env` and `hyperlocal.toml`.

Names use the prefix ``HYPERLOCAL_`` and ``__`` between levels, e.g.
``HYPERLOCAL_IMAGE__STEPS=8`` or ``HYPERLOCAL_QC__MAX_ATTEMPTS=2``. A named
profile (``preview``, ``balanced``, ``quality``) fills every setting the user
did not set; a single setting always wins over its profile. The variable names
of the earlier setup (``HYPERLOCAL_LLM_PROVIDER``, ``SDXL_STEPS`` ...) still
work: ``LegacyEnvSource`` maps them onto the new fields, below the new names.

Sources, strongest first: arguments, ``HYPERLOCAL_*`` variables, earlier
variable names, ``.env``, ``hyperlocal.toml`` (or the file named by
``HYPERLOCAL_CONFIG``), the profile, the defaults.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hyperlocal.errors import SettingsError
from hyperlocal.layout.designs import DESIGNS, DesignName
from hyperlocal.layout.formats import FORMATS, FormatName

ProfileName = Literal["preview", "balanced", "quality"]

ENV_PREFIX = "HYPERLOCAL_"
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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr (logs, tracebacks, debuggers) shows URLs without their secrets;
        # SecretStr fields already show stars.
        for name, value in super().__repr_args__():
            yield name, _redact_urls(value) if isinstance(value, str) else value


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
    timeout_s: float = Field(default=120, gt=0, description="Seconds to wait for one answer.")
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
    timeout_s: float = Field(default=120, gt=0, description="Seconds to wait for one verdict.")
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


class Profile(BaseModel):
    """A tested bundle of settings; any single setting overrides it."""

    model_config = ConfigDict(frozen=True)

    variants: int
    formats: tuple[FormatName, ...]
    steps: int
    cfg_scale: float
    megapixels: float
    qc_enabled: bool
    max_attempts: int
    print_ppi: int


PROFILES: dict[str, Profile] = {
    "preview": Profile(
        variants=2,
        formats=("letter", "square"),
        steps=4,
        cfg_scale=0.0,
        megapixels=0.6,
        qc_enabled=True,
        max_attempts=2,
        print_ppi=150,
    ),
    "balanced": Profile(
        variants=3,
        formats=("letter", "square"),
        steps=20,
        cfg_scale=6.0,
        megapixels=1.0,
        qc_enabled=True,
        max_attempts=3,
        print_ppi=200,
    ),
    "quality": Profile(
        variants=4,
        formats=("letter", "square"),
        steps=30,
        cfg_scale=6.5,
        megapixels=1.0,
        qc_enabled=True,
        max_attempts=4,
        print_ppi=300,
    ),
}

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


class Settings(BaseSettings):
    """Everything Hyperlocal can be told, with the profile filled in."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_assignment=True,
    )

    profile: ProfileName = Field(default="preview", description="Bundle of tested settings.")
    variants: int | None = Field(default=None, ge=1, le=8, description="Flyer variants per brief.")
    formats: list[FormatName] | None = Field(
        default=None, min_length=1, description=f"Formats to make: {', '.join(FORMATS)}."
    )
    output_dir: Path = Field(default=Path("output"), description="Where run folders go.")
    cache_dir: Path = Field(default=Path(".cache/hyperlocal"), description="Cached step results.")
    asset_dirs: list[Path] = Field(
        default_factory=lambda: [Path("examples"), Path("assets")],
        description="Folders that logos and other assets may come from (besides the brief's).",
    )
    max_parallel: int = Field(default=4, ge=1, le=64, description="Variants worked on at once.")
    task_runner: Literal["threads", "dask"] = Field(
        default="threads",
        description="Where steps run: threads of this process, or a Dask cluster.",
    )
    dask_address: str | None = Field(
        default=None,
        description="Scheduler of an existing Dask cluster (tcp://host:8786); unset starts "
        "a local cluster.",
    )
    dask_workers: int = Field(
        default=2, ge=1, le=256, description="Workers of the local Dask cluster."
    )
    gpu_slots: int = Field(
        default=1,
        ge=1,
        le=64,
        description="In-process image steps (diffusers) at once across all workers "
        "(a Prefect concurrency limit on the tag 'gpu').",
    )
    models_memory_gb: float = Field(
        default=16.0, gt=0, description="Memory for models loaded in process (least used go)."
    )
    text: TextSettings = Field(default_factory=TextSettings)
    image: ImageSettings = Field(default_factory=ImageSettings)
    vision: VisionSettings = Field(default_factory=VisionSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    qc: QCSettings = Field(default_factory=QCSettings)
    layout: LayoutSettings = Field(default_factory=LayoutSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    servers: ServersSettings = Field(default_factory=ServersSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: arguments, new names, earlier names, .env, TOML file."""
        toml_file = Path(os.environ.get("HYPERLOCAL_CONFIG", "hyperlocal.toml"))
        return (
            init_settings,
            env_settings,
            LegacyEnvSource(settings_cls),
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    def model_post_init(self, context: Any, /) -> None:
        """Fill every setting the user left unset from the profile."""
        profile = PROFILES[self.profile]
        fills: list[tuple[BaseModel, str, Any]] = [
            (self, "variants", profile.variants),
            (self, "formats", list(profile.formats)),
            (self.image, "steps", profile.steps),
            (self.image, "cfg_scale", profile.cfg_scale),
            (self.image, "megapixels", profile.megapixels),
            (self.qc, "enabled", profile.qc_enabled),
            (self.qc, "max_attempts", profile.max_attempts),
            (self.layout, "print_ppi", profile.print_ppi),
        ]
        for owner, name, value in fills:
            if getattr(owner, name) is None:
                # object.__setattr__ keeps "set by the user" (model_fields_set) unchanged.
                object.__setattr__(owner, name, value)

    def public_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-ready data with every secret removed (for manifests).

        API keys and tokens become stars, and so do the secrets of any URL in them:
        a password (``http://user:password@host``, as A1111's ``--api-auth`` wants)
        and credential query parameters (a Civitai link's ``?token=``).
        """
        data = self.model_dump(mode="json")
        for section, name in (
            ("text", "api_key"),
            ("vision", "api_key"),
            ("models", "hf_token"),
            ("models", "download_token"),
        ):
            if data[section].get(name) is not None:
                data[section][name] = "**********"
        # Server URLs, model and LoRA URLs: wherever a URL is, its secrets go.
        redacted: dict[str, Any] = _redact_urls(data)
        return redacted

    def with_overrides(self, **changes: Any) -> Settings:
        """Return new settings with ``changes`` applied as if the user had set them.

        Keys use ``__`` for nesting (``image__seed=3``); a new ``profile`` refills
        what the user did not set. Raises ``SettingsError`` for a bad value.
        """
        data = self.model_dump(exclude_unset=True)
        for key, value in changes.items():
            if value is None:
                continue
            target = data
            *parents, leaf = key.split("__")
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = value
        try:
            return Settings.model_validate(data)
        except ValidationError as exc:
            raise SettingsError(describe_settings_error(exc)) from None


def sha256_digest(value: str | None) -> str | None:
    """Return ``value`` as a lowercase sha256 hex digest; raises ``ValueError`` otherwise."""
    if value is None:
        return None
    digest = value.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{value!r} is not a sha256 digest (64 hexadecimal digits)")
    return digest


#: Query parameters that carry credentials (Civitai's ``?token=``, signed URLs).
SECRET_QUERY_KEYS = frozenset(
    {
        "token",
        "key",
        "api_key",
        "apikey",
        "auth",
        "signature",
        "sig",
        "access_token",
        "password",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
    }
)


def redact_url(url: str) -> str:
    """Return ``url`` with its secrets replaced by stars: the password of a
    ``user:password@`` part and the values of credential query parameters
    (``?token=...``). Anything that is not an http(s)-style URL comes back unchanged.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(a URL that does not parse)"
    pairs = parse_qsl(parts.query, keep_blank_values=True) if parts.scheme else []
    secret_query = any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs)
    if not password and not secret_query:
        return url
    if password:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if secret_query:
        query = [(k, "***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


def _redact_urls(value: Any) -> Any:
    """Return ``value`` (JSON-like data) with every URL in it passed through ``redact_url``."""
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, dict):
        return {k: _redact_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_urls(v) for v in value]
    return value


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


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from every source; raises ``SettingsError`` with one clear line."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise SettingsError(describe_settings_error(exc)) from None
    return settings.with_overrides(**overrides) if overrides else settings
