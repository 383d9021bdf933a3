"""Settings: one declared type, read from the environment, `.env` and `hyperlocal.toml`.

``Settings`` and ``load_settings`` (``main``), the sections (``sections``), the
profiles (``profiles``) and the earlier variable names (``sources``); import them
from here.
"""

from hyperlocal.settings.main import Settings, load_settings
from hyperlocal.settings.profiles import PROFILES, Profile, ProfileName
from hyperlocal.settings.sections import (
    TEXT_PROVIDER_URLS,
    ImageSettings,
    LayoutSettings,
    LoraSettings,
    ModelsSettings,
    QCSettings,
    RetrySettings,
    ScheduleSettings,
    ServersSettings,
    TextProvider,
    TextSettings,
    VisionSettings,
    sha256_digest,
)
from hyperlocal.settings.sources import (
    ENV_PREFIX,
    LegacyEnvSource,
    describe_settings_error,
    legacy_name,
)

__all__ = [
    "ENV_PREFIX",
    "PROFILES",
    "TEXT_PROVIDER_URLS",
    "ImageSettings",
    "LayoutSettings",
    "LegacyEnvSource",
    "LoraSettings",
    "ModelsSettings",
    "Profile",
    "ProfileName",
    "QCSettings",
    "RetrySettings",
    "ScheduleSettings",
    "ServersSettings",
    "Settings",
    "TextProvider",
    "TextSettings",
    "VisionSettings",
    "describe_settings_error",
    "legacy_name",
    "load_settings",
    "sha256_digest",
]
