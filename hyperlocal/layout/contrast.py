"""Legible text on any picture: WCAG contrast, measured on the pixels under the text.

``measure_text_style`` looks at the picture where the layout puts its text panel
and chooses the text colour, the panel colour and the least panel opacity that
give WCAG 4.5:1 on the worst-case pixel, plus an accent with 3:1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image

from hyperlocal.colors import srgb_to_linear, unit_hex, unit_rgb
from hyperlocal.layout.designs import MIN_OPACITY
from hyperlocal.layout.formats import Zone
from hyperlocal.models import TextStyle
from hyperlocal.pictures import decode_picture

WHITE = "#FFFFFF"
#: Near-black for text on light panels: softer than pure black, still over 18:1 on white.
INK = "#111418"
BLACK = "#000000"

#: WCAG 2 AA contrast for normal-size text, and for large text and graphics.
TEXT_CONTRAST = 4.5
ACCENT_CONTRAST = 3.0
#: A panel colour must reach this contrast with its text on its own (at full opacity),
#: so that a partly see-through panel still has room to reach TEXT_CONTRAST.
PANEL_CONTRAST = 9.0
#: Share of the pixels under the panel that must meet the contrast: the worst 2 %
#: (specks, noise) are ignored, the rest is the worst case.
COVERED_SHARE = 98.0
#: Opacity levels ``needed_opacity`` tries at once before looking for one that passes.
_SCAN_STEP = 8


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of sRGB values in 0..1 (last axis: red, green, blue)."""
    return srgb_to_linear(rgb) @ np.array([0.2126, 0.7152, 0.0722])


def relative_luminance(colour: str) -> float:
    """Return the WCAG 2 relative luminance (0 black .. 1 white) of a hex colour.

    Raises ``ValueError`` for a string that is not ``#RGB`` or ``#RRGGBB``.
    """
    return float(_luminance(np.array(unit_rgb(colour))))


def contrast_ratio(first: str, second: str) -> float:
    """Return the WCAG 2 contrast ratio (1 to 21) between two hex colours.

    Raises ``ValueError`` for a string that is not a hex colour.
    """
    high, low = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _contrast(lum: np.ndarray, other: float) -> np.ndarray:
    return (np.maximum(lum, other) + 0.05) / (np.minimum(lum, other) + 0.05)


def _mix_until(colour: str, toward: str, good: Callable[[str], bool]) -> str:
    """Move ``colour`` toward ``toward`` in small steps until it is ``good``."""
    start, end = np.array(unit_rgb(colour)), np.array(unit_rgb(toward))
    for step in range(21):
        candidate = unit_hex(start + (end - start) * step / 20)
        if good(candidate):
            return candidate
    return toward


def load_picture(png: bytes) -> Image.Image:
    """Decode ``png`` as RGB on the white page the template draws it on.

    Raises ``InvalidImage`` for bytes that are not a picture.
    """
    image = decode_picture(png, None, "the background")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent parts show the page, which the template fills white.
        page = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(page, image.convert("RGBA"))
    # decode_picture returns a picture of our own, so an RGB one needs no further copy.
    return image if image.mode == "RGB" else image.convert("RGB")


def visible_box(size: tuple[int, int], page_aspect: float) -> tuple[float, float, float, float]:
    """The part of a picture that a centred cover fit shows on the page: (left, top, w, h)."""
    width, height = size
    if width / height > page_aspect:
        keep = height * page_aspect
        return (width - keep) / 2, 0.0, keep, float(height)
    keep = width / page_aspect
    return 0.0, (height - keep) / 2, float(width), keep


def zone_pixels(png: bytes, zone: Zone, page_aspect: float | None) -> np.ndarray:
    """Return the picture's pixels under ``zone`` as an (N, 3) array of sRGB values in 0..1.

    Raises ``InvalidImage`` for bytes that are not a picture.
    """
    return pixels_under(load_picture(png), zone, page_aspect)


def pixels_under(image: Image.Image, zone: Zone, page_aspect: float | None) -> np.ndarray:
    """Return ``zone_pixels`` of a picture already decoded with ``load_picture``."""
    if page_aspect:
        # The template covers the page (fit: "cover", centred): crop the same way.
        left, top, width, height = visible_box(image.size, page_aspect)
        box = (round(left), round(top), round(left + width), round(top + height))
        image = image.crop(box)
    region = image.crop(zone.pixels(*image.size))
    # Averaging blocks of a few pixels keeps the measure fast; 160 samples across the
    # zone is still finer than the strokes of the smallest text on it.
    scale = min(1.0, 160 / max(region.size))
    size = (max(1, round(region.width * scale)), max(1, round(region.height * scale)))
    region = region.resize(size, Image.Resampling.BOX)
    return np.asarray(region, dtype=np.float64).reshape(-1, 3) / 255


def _worst_contrast(pixels: np.ndarray, panel: str, opacity: float, colour: str) -> float:
    """Contrast of ``colour`` on the worst-case pixel once the panel is laid over the picture."""
    return float(_worst_contrasts(pixels, panel, np.array([opacity]), colour)[0])


def _worst_contrasts(
    pixels: np.ndarray, panel: str, opacities: np.ndarray, colour: str
) -> np.ndarray:
    # PDF viewers and Typst's PNG renderer blend in gamma-encoded sRGB, so do we.
    alpha = opacities[:, None, None]
    composite = alpha * np.array(unit_rgb(panel)) + (1 - alpha) * pixels[None]
    contrast = _contrast(_luminance(composite), relative_luminance(colour))
    return np.percentile(contrast, 100 - COVERED_SHARE, axis=1)


def needed_opacity(pixels: np.ndarray, panel: str, text: str) -> float:
    """The lowest 8-bit panel opacity at which ``text`` reaches TEXT_CONTRAST everywhere."""
    # Renderers store opacity in 8 bits, so only k/255 can occur: scan every 8th level,
    # then the levels just below the first that passes. (Should contrast not rise
    # steadily with opacity, this can only err toward a more opaque panel.) The scan
    # goes a few levels at a time and stops at the first that passes: a calm picture
    # passes early, and each level's contrast is the same however many are computed.
    coarse = np.append(np.arange(0, 256, 8), 255)
    first = None
    for start in range(0, len(coarse), _SCAN_STEP):
        levels = coarse[start : start + _SCAN_STEP]
        passing = np.nonzero(_worst_contrasts(pixels, panel, levels / 255, text) >= TEXT_CONTRAST)
        if passing[0].size:
            first = start + int(passing[0][0])
            break
    if first is None:
        return 1.0
    if first == 0:
        return 0.0
    fine = np.arange(coarse[first - 1] + 1, coarse[first] + 1)
    ok = np.nonzero(_worst_contrasts(pixels, panel, fine / 255, text) >= TEXT_CONTRAST)[0]
    return float(fine[ok[0]] / 255)


def _panel_colours(palette: list[str]) -> tuple[str, str]:
    """Return (dark panel, light panel) derived from the brand palette."""
    by_lightness = sorted(palette, key=relative_luminance)
    # The primary (first) colour is the brand's dark unless another brand colour is darker.
    primary = palette[0]
    dark_base = primary if relative_luminance(primary) <= 0.2 else by_lightness[0]
    light_base = palette[2] if len(palette) > 2 else by_lightness[-1]
    if relative_luminance(light_base) < 0.6:
        light_base = by_lightness[-1]
    dark = _mix_until(dark_base, BLACK, lambda c: contrast_ratio(c, WHITE) >= PANEL_CONTRAST)
    # A light panel is a pale tint, not a saturated mid-tone that merely passes.
    light = _mix_until(
        light_base,
        WHITE,
        lambda c: contrast_ratio(c, INK) >= PANEL_CONTRAST and relative_luminance(c) >= 0.7,
    )
    return dark, light


def _pick_accent(
    pixels: np.ndarray, panel: str, opacity: float, text: str, palette: list[str]
) -> str:
    accent_first = [*palette[1:2], *palette[2:], *palette[:1]]
    for colour in accent_first:
        if colour.upper() == panel.upper():
            continue
        if _worst_contrast(pixels, panel, opacity, colour) >= ACCENT_CONTRAST:
            return colour.upper()
    # No brand colour stands out on this panel: tint a colourful brand accent toward the
    # text colour until it does, keeping its hue (a tinted grey is no accent at all).
    base = np.array(unit_rgb(accent_first[0]))
    end = np.array(unit_rgb(text))
    if base.max() - base.min() < 0.25:
        return text
    for step in range(1, 11):
        candidate = unit_hex(base + (end - base) * step / 10)
        if _worst_contrast(pixels, panel, opacity, candidate) >= ACCENT_CONTRAST:
            return candidate
    return text


def _text_on(fill: str) -> str:
    best = max((WHITE, INK), key=lambda colour: contrast_ratio(colour, fill))
    # Either white or pure black always reaches 4.58:1; near-black may fall just short.
    return best if contrast_ratio(best, fill) >= TEXT_CONTRAST else BLACK


def measure_text_style(
    background_png: bytes,
    zone: Zone,
    palette: list[str],
    *,
    page_aspect: float | None = None,
    min_opacity: float = MIN_OPACITY["frosted"],
) -> TextStyle:
    """Choose the text panel's colours from the picture actually under ``zone``.

    Tries white text on a dark panel (from the brand's darkest colour, normally the
    primary) and near-black text on a light panel (from the brand's light colour),
    and keeps the one that needs the lower opacity for WCAG 4.5:1 on the worst-case
    pixel (98 % of the zone). The opacity is that minimum, but never below
    ``min_opacity`` (by default the frosted panel's, from ``designs.MIN_OPACITY``).
    The accent (fact strip, button) is the first brand colour with 3:1 on the
    panel, else the brand accent tinted toward the text colour; the button text
    reaches 4.5:1 on the accent. ``page_aspect`` (width / height) crops
    the picture as the template's full-bleed cover fit does. Raises ``InvalidImage``
    for bytes that are not a picture and ``ValueError`` for an empty palette or a
    colour that is not hex.
    """
    if not palette:
        raise ValueError("the palette needs at least one colour")
    palette = [unit_hex(unit_rgb(colour)) for colour in palette]
    pixels = zone_pixels(background_png, zone, page_aspect)
    dark, light = _panel_colours(palette)
    options = [
        (needed_opacity(pixels, dark, WHITE), 0, dark, WHITE),
        (needed_opacity(pixels, light, INK), 1, light, INK),
    ]
    needed, _, panel, text = min(options)
    opacity = max(needed, math.ceil(min_opacity * 255) / 255)
    accent = _pick_accent(pixels, panel, opacity, text, palette)
    contrast = _worst_contrast(pixels, panel, opacity, text)
    return TextStyle(
        text_color=text,
        panel_color=panel,
        # Rounded up, so the page is never more see-through than what was measured.
        panel_opacity=math.ceil(opacity * 10_000) / 10_000,
        accent_color=accent,
        accent_text_color=_text_on(accent),
        # Rounded down so the record never claims more contrast than the page has.
        contrast=math.floor(contrast * 100) / 100,
    )
