"""Settings: the root type (``Settings``) and ``load_settings``, which reads every source.

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
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hyperlocal.errors import SettingsError
from hyperlocal.layout.formats import FORMATS, FormatName
from hyperlocal.redaction import redact_urls
from hyperlocal.settings.profiles import PROFILES, ProfileName
from hyperlocal.settings.sections import (
    ImageSettings,
    LayoutSettings,
    ModelsSettings,
    QCSettings,
    RetrySettings,
    ScheduleSettings,
    ServersSettings,
    TextSettings,
    VisionSettings,
)
from hyperlocal.settings.sources import ENV_PREFIX, LegacyEnvSource, describe_settings_error


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
    model_workers: Literal["auto", "off", "required"] = Field(
        default="auto",
        description="Where the model steps (copy, art direction, picture, check) run: on "
        "model workers (python -m flows.workers) when the run's Prefect server has any "
        "(auto), always in the run's own process (off), or only on workers: a run with "
        "none connected stops (required).",
    )
    prefect_server: Literal["auto", "start", "temporary"] = Field(
        default="auto",
        description="The Prefect server a command uses when PREFECT_API_URL is unset: one "
        "already running at Prefect's local address, else a temporary one (auto); the same, "
        "starting a background server when none runs (start); always a temporary one "
        "(temporary).",
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
        redacted: dict[str, Any] = redact_urls(data)
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


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from every source; raises ``SettingsError`` with one clear line."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise SettingsError(describe_settings_error(exc)) from None
    return settings.with_overrides(**overrides) if overrides else settings
