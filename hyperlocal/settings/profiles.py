"""Profiles: tested bundles of settings (``preview``, ``balanced``, ``quality``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from hyperlocal.layout.formats import FormatName

ProfileName = Literal["preview", "balanced", "quality"]


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
