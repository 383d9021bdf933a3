"""The picture behind the text: the frosted panel's blur and each treatment's least opacity."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from hyperlocal.layout.backdrop import FROST_BLUR, frost, measure_style, stored_png
from hyperlocal.layout.contrast import (
    TEXT_CONTRAST,
    load_picture,
    measure_text_style,
    needed_opacity,
    visible_box,
)
from hyperlocal.layout.designs import DESIGNS, MIN_OPACITY, place_design
from hyperlocal.layout.formats import FORMATS, Zone
from hyperlocal.layout.geometry import PageGeometry

PALETTE = ["#1F3A5F", "#F2A541", "#FDF6EC"]


def noise_png(width: int, height: int, seed: int) -> bytes:
    """A picture of random pixels: every pixel differs, so any blur difference shows."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def frost_whole_picture(
    picture: Image.Image, zone: Zone, page_aspect: float, radius: float
) -> Image.Image:
    """The frosted panel as first written: the whole picture blurred and masked."""
    left, top, width, height = visible_box(picture.size, page_aspect)
    box = (
        round(left + zone.x * width),
        round(top + zone.y * height),
        round(left + (zone.x + zone.w) * width),
        round(top + (zone.y + zone.h) * height),
    )
    blurred = picture.filter(ImageFilter.GaussianBlur(width * FROST_BLUR))
    mask = Image.new("L", (picture.width * 4, picture.height * 4), 0)
    corner = max(1, round(radius * width * 4))
    ImageDraw.Draw(mask).rounded_rectangle([c * 4 for c in box], radius=corner, fill=255)
    result = picture.copy()
    result.paste(blurred, (0, 0), mask.resize(picture.size, Image.Resampling.BOX))
    return result


@pytest.mark.parametrize(
    ("size", "zone", "aspect", "radius"),
    [
        ((832, 1216), Zone(x=0.06, y=0.47, w=0.88, h=0.47), 0.77, 0.022),  # letter-like
        ((1024, 1024), Zone(x=0.06, y=0.34, w=0.88, h=0.6), 1.0, 0.022),  # square
        ((640, 400), Zone(x=0.0, y=0.5, w=1.0, h=0.5), 0.56, 0.022),  # at the edges, cropped
        ((300, 900), Zone(x=0.1, y=0.0, w=0.5, h=1.0), 1.4, 0.05),  # cropped the other way
        ((500, 500), Zone(x=0.4, y=0.4, w=0.05, h=0.3), 1.0, 0.2),  # corners meet
        ((500, 700), Zone(x=0.2, y=0.3, w=0.6, h=0.5), 0.7, 0.0),  # square corners
    ],
)
def test_the_frosted_panel_has_the_pixels_of_blurring_the_whole_picture(
    size: tuple[int, int], zone: Zone, aspect: float, radius: float
) -> None:
    # frost blurs a crop and draws only the mask's corners; the result must not show it.
    png = noise_png(*size, seed=size[0])
    expected = frost_whole_picture(load_picture(png), zone, aspect, radius)
    picture = load_picture(png)
    frost(picture, zone, aspect, radius)
    assert np.array_equal(np.asarray(picture), np.asarray(expected))


def test_the_frosted_picture_is_written_with_its_pixels_unchanged() -> None:
    picture = load_picture(noise_png(123, 45, seed=1))
    with Image.open(io.BytesIO(stored_png(picture))) as written:
        assert written.format == "PNG"
        assert np.array_equal(np.asarray(written.convert("RGB")), np.asarray(picture))


def test_a_calm_picture_gets_the_frosted_panels_least_opacity_from_the_designs_table() -> None:
    white = io.BytesIO()
    Image.new("RGB", (64, 64), "#FFFFFF").save(white, format="PNG")
    # Dark text on a light panel needs no panel at all on white: the floor decides.
    style = measure_text_style(white.getvalue(), Zone(x=0, y=0.5, w=1, h=0.5), PALETTE)
    assert style.panel_opacity == pytest.approx(MIN_OPACITY["frosted"], abs=1 / 255)
    assert style.panel_opacity >= MIN_OPACITY["frosted"]


@pytest.mark.parametrize("design", DESIGNS)
def test_each_design_measures_with_its_treatments_least_opacity(design: str) -> None:
    fmt = FORMATS["square"]
    placed = place_design(fmt, design)
    white = io.BytesIO()
    Image.new("RGB", (64, 64), "#FFFFFF").save(white, format="PNG")
    geometry = PageGeometry.for_format(fmt, bleed=False, crop_marks=False)
    style = measure_style(white.getvalue(), fmt, placed, PALETTE, geometry)
    floor = MIN_OPACITY[placed.treatment]
    assert floor <= style.panel_opacity <= floor + 1 / 255 + 1e-4


def _worst_contrast_over(grey: float, panel: str, level: int, text: str) -> float:
    """WCAG contrast of ``text`` on ``panel`` at ``level``/255 over a flat grey (sRGB blend)."""

    def luminance(rgb: np.ndarray) -> float:
        linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        return float(linear @ np.array([0.2126, 0.7152, 0.0722]))

    def unit(colour: str) -> np.ndarray:
        return np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])

    alpha = level / 255
    mixed = luminance(alpha * unit(panel) + (1 - alpha) * np.full(3, grey))
    high, low = sorted((mixed, luminance(unit(text))), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("grey", [0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 1.0])
def test_the_panel_opacity_is_the_lowest_8_bit_level_that_reaches_wcag_aa(grey: float) -> None:
    panel, text = "#0B1A2E", "#FFFFFF"
    level = round(needed_opacity(np.full((40, 3), grey), panel, text) * 255)
    assert _worst_contrast_over(grey, panel, level, text) >= TEXT_CONTRAST - 1e-9
    if level > 0:
        assert _worst_contrast_over(grey, panel, level - 1, text) < TEXT_CONTRAST + 1e-9
