"""The table of flyer formats: page size, outputs and where the text goes.

Each format is one entry in ``FORMATS``; the Typst template reads the entry as
data, so adding a format never means copying a template. The text zone declared
here is what art direction asks to keep calm, what the builtin painter keeps
calm, what QC checks and where the layout places its text panel.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

OutputKind = Literal["pdf", "png"]
FormatName = Literal["letter", "a4", "half_letter", "square", "portrait", "story"]
Medium = Literal["print", "screen"]

#: Sizes SDXL was trained on (width, height); every one is a multiple of 64.
SDXL_TRAINED_SIZES: tuple[tuple[int, int], ...] = (
    (1024, 1024),
    (1152, 896),
    (896, 1152),
    (1216, 832),
    (832, 1216),
    (1344, 768),
    (768, 1344),
    (1536, 640),
    (640, 1536),
)


class Zone(BaseModel):
    """A rectangle on the page, in fractions of the page's width and height."""

    model_config = ConfigDict(frozen=True)

    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    w: float = Field(gt=0, le=1)
    h: float = Field(gt=0, le=1)

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Return the zone as ``(left, top, right, bottom)`` pixels of a picture of that size."""
        left = round(self.x * width)
        top = round(self.y * height)
        right = max(left + 1, round((self.x + self.w) * width))
        bottom = max(top + 1, round((self.y + self.h) * height))
        return left, top, min(right, width), min(bottom, height)

    def describe(self) -> str:
        """Return where the zone lies in words, for art direction ("the lower half")."""
        vertical = "upper" if self.y + self.h / 2 < 0.4 else "lower" if self.y > 0.3 else "middle"
        share = "half" if self.h >= 0.4 else "third"
        return f"the {vertical} {share}"


class FlyerFormat(BaseModel):
    """One flyer format: its trim size, the files it produces, its bleed and safe area."""

    model_config = ConfigDict(frozen=True)

    name: str
    label: str
    width: float = Field(gt=0, description="Trim width in `unit`.")
    height: float = Field(gt=0, description="Trim height in `unit`.")
    unit: Literal["in", "mm", "px"]
    outputs: tuple[OutputKind, ...]
    medium: Medium
    bleed: float = Field(
        default=0, ge=0, description="Print bleed in `unit` (1/8 in US sizes, 3 mm ISO)."
    )
    safe_margin: float = Field(
        default=0, ge=0, description="Least distance of text from the trim edge, in `unit`."
    )
    ui_top: float = Field(
        default=0, ge=0, lt=0.5, description="Share of the height an app covers at the top."
    )
    ui_bottom: float = Field(
        default=0, ge=0, lt=0.5, description="Share of the height an app covers at the bottom."
    )

    @property
    def aspect(self) -> float:
        """Width divided by height."""
        return self.width / self.height

    @property
    def width_pt(self) -> float:
        """Trim width in typographic points (1/72 inch); pixel formats map 144 px to an inch."""
        return _to_pt(self.width, self.unit)

    @property
    def height_pt(self) -> float:
        """Trim height in typographic points."""
        return _to_pt(self.height, self.unit)

    @property
    def bleed_pt(self) -> float:
        """Bleed in points (0 for screen formats)."""
        return _to_pt(self.bleed, self.unit)

    @property
    def safe(self) -> Zone:
        """Where text, logo and QR code may go, in fractions of the trim.

        The margin is 6 % of the shorter side (the layouts' breathing room), never
        less than the print safe margin; a story also keeps clear of the bands the
        app draws over it at the top and bottom.
        """
        short = min(self.width_pt, self.height_pt)
        margin = max(0.06 * short, _to_pt(self.safe_margin, self.unit))
        mx, my = margin / self.width_pt, margin / self.height_pt
        top = max(my, self.ui_top)
        bottom = max(my, self.ui_bottom)
        return Zone(x=mx, y=top, w=1 - 2 * mx, h=1 - top - bottom)

    def png_ppi(self, print_ppi: int) -> float:
        """Return the PNG resolution: exact pixels for screen formats, else ``print_ppi``."""
        return float(PIXEL_FORMAT_PPI) if self.unit == "px" else float(print_ppi)


#: Screen formats are laid out on a page of ``px / 144`` inches and rendered at 144 ppi.
PIXEL_FORMAT_PPI = 144


def _to_pt(value: float, unit: str) -> float:
    if unit == "in":
        return value * 72
    if unit == "mm":
        return value * 72 / 25.4
    return value * 72 / PIXEL_FORMAT_PPI


_US_PRINT = {"unit": "in", "outputs": ("pdf", "png"), "medium": "print", "bleed": 0.125}
_ISO_PRINT = {"unit": "mm", "outputs": ("pdf", "png"), "medium": "print", "bleed": 3.0}
_SCREEN = {"unit": "px", "outputs": ("png",), "medium": "screen"}

FORMATS: dict[str, FlyerFormat] = {
    fmt.name: fmt
    for fmt in (
        FlyerFormat(
            name="letter",
            label="US letter poster",
            width=8.5,
            height=11,
            safe_margin=0.25,
            **_US_PRINT,
        ),
        FlyerFormat(
            name="a4", label="A4 poster", width=210, height=297, safe_margin=6, **_ISO_PRINT
        ),
        FlyerFormat(
            name="half_letter",
            label="Half-letter handbill",
            width=5.5,
            height=8.5,
            safe_margin=0.1875,
            **_US_PRINT,
        ),
        FlyerFormat(
            name="square", label="1080x1080 social post", width=1080, height=1080, **_SCREEN
        ),
        FlyerFormat(
            name="portrait", label="1080x1350 portrait post", width=1080, height=1350, **_SCREEN
        ),
        # Stories: the app's profile bar covers the top 250 px and the reply bar the
        # bottom 340 px, so no text goes there.
        FlyerFormat(
            name="story",
            label="1080x1920 story",
            width=1080,
            height=1920,
            ui_top=250 / 1920,
            ui_bottom=340 / 1920,
            **_SCREEN,
        ),
    )
}


def get_format(name: str) -> FlyerFormat:
    """Return the format called ``name``; raises ``KeyError`` naming the known formats."""
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown format {name!r}; known formats: {', '.join(FORMATS)}") from None


def sdxl_size_for(aspect: float, megapixels: float = 1.0) -> tuple[int, int]:
    """Return the SDXL-trained size nearest ``aspect``, scaled to about ``megapixels``.

    At one megapixel this is one of ``SDXL_TRAINED_SIZES``; smaller budgets scale
    that size down and round both sides to multiples of 64 (never below 256).
    """
    base_w, base_h = min(SDXL_TRAINED_SIZES, key=lambda s: abs(math.log((s[0] / s[1]) / aspect)))
    scale = math.sqrt(megapixels * 1024 * 1024 / (base_w * base_h))
    width = max(256, round(base_w * scale / 64) * 64)
    height = max(256, round(base_h * scale / 64) * 64)
    return width, height
