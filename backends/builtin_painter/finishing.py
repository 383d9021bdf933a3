"""Finishing a painted picture: the calm text zone, tone mapping, resizing and film grain.

The styles paint in linear light at a reduced working size; these steps turn
that into the full-size 8-bit sRGB picture.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from backends.builtin_painter.canvas import Canvas
from backends.builtin_painter.colour import FloatArray


def calm_text_zone(canvas: Canvas, picture: FloatArray, calm: FloatArray) -> FloatArray:
    """Return ``picture`` with its text zone faded into ``calm``, feathered and evenly lit.

    Never raises; the zone must hold at least one pixel (``Zone.pixels`` makes sure).
    """
    left, top, right, bottom = canvas.zone
    band_top, band_bottom = canvas.free_band()
    # A wide feather is soft, but it must not swallow a narrow free band.
    feather = min(0.1 * canvas.unit, 0.3 * (band_bottom - band_top))
    mask = canvas.zone_mask(feather)
    inside = calm[top:bottom, left:right].reshape(-1, 3).mean(axis=0)
    # Pull the calm field towards its own mean so the text panel sits on even light.
    flat = calm + (inside - calm) * 0.6
    # A faint ghost of the art stays, so the zone reads as depth rather than a hole.
    return picture + (flat - picture) * (0.96 * mask)[..., None]


def tone_map(linear: FloatArray) -> FloatArray:
    """Return linear values with highlights rolled off below white and the blackest lifted.

    Never raises.
    """
    knee = 0.72
    over = np.maximum(linear - knee, 0)
    shoulder = knee + (0.94 - knee) * np.tanh(over / (0.94 - knee))
    mapped = np.where(linear > knee, shoulder, linear)
    return (0.006 + 0.994 * mapped).astype(np.float32)


def resize_channels(srgb: FloatArray, width: int, height: int) -> FloatArray:
    """Return the picture scaled to ``width`` x ``height`` (bicubic, per float channel).

    Never raises; a picture already that size is returned as it is.
    """
    if srgb.shape[1] == width and srgb.shape[0] == height:
        return srgb
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(srgb[..., c])).resize(
                (width, height), Image.Resampling.BICUBIC
            )
        )
        for c in range(3)
    ]
    return np.stack(channels, axis=-1)


def quantise_with_grain(srgb: FloatArray, rng: np.random.Generator) -> NDArray[np.uint8]:
    """Return sRGB values (0..1) as uint8 with film grain from ``rng`` added (never raises)."""
    height, width = srgb.shape[:2]
    # Monochrome grain of about 2.5 levels at a megapixel: filmic texture that also dithers
    # every gradient. A small picture is shown enlarged, so its grain is made fainter to look
    # the same; it never drops below what dithering needs.
    strength = 2.5 * float(np.clip(math.sqrt(width * height / 1e6), 0.4, 1.0))
    grain = rng.standard_normal((height, width), dtype=np.float32) * (strength / 255)
    values = (srgb + grain[..., None]) * 255 + 0.5
    return np.clip(values, 0, 255).astype(np.uint8)
