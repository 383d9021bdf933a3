"""The ground every style paints on: an OKLab gradient with soft glows and a vignette."""

from __future__ import annotations

import math

import numpy as np

from backends.builtin_painter.canvas import Canvas, smoothstep
from backends.builtin_painter.colour import (
    FloatArray,
    lch_to_lab,
    lch_to_linear,
    oklab_to_linear,
    shift,
)


def _gaussian(canvas: Canvas, cx: float, cy: float, sigma: float) -> FloatArray:
    xs = (np.arange(canvas.width, dtype=np.float32) + 0.5 - cx) / sigma
    ys = (np.arange(canvas.height, dtype=np.float32) + 0.5 - cy) / sigma
    # Separable: two 1-D exponentials and one outer product instead of a full-size exp.
    return np.outer(np.exp(-0.5 * ys * ys), np.exp(-0.5 * xs * xs)).astype(np.float32)


def background(canvas: Canvas) -> FloatArray:
    """Return an OKLab gradient between the background pair, with soft glows and a vignette.

    Never raises.
    """
    rng = canvas.rng
    first, second = canvas.scheme.background
    angle = rng.uniform(0, 2 * math.pi)
    xs, ys = canvas.grid()
    along = (xs * math.cos(angle) + ys * math.sin(angle)).astype(np.float32)
    along = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    # Sample the gradient in OKLab (even steps to the eye), then look it up per pixel.
    stops = np.linspace(0, 1, 64)
    lab = (1 - stops)[:, None] * lch_to_lab(first) + stops[:, None] * lch_to_lab(second)
    table = np.clip(oklab_to_linear(lab), 0, 1).astype(np.float32)
    eased = smoothstep(0.0, 1.0, along)
    picture = np.stack([np.interp(eased, stops, table[:, c]) for c in range(3)], axis=-1)
    picture = picture.astype(np.float32)

    band_top, band_bottom = canvas.free_band()
    for index in range(2):
        # Glows stay near the background's hue: a complementary glow would mix to mud.
        glow = lch_to_linear(
            shift(first, 0.14 if index == 0 else 0.08, 1.5, 28 if index == 0 else -24)
        )
        cx = rng.uniform(0.1, 0.9) * canvas.width
        cy = rng.uniform(band_top, band_bottom)
        weight = _gaussian(canvas, cx, cy, rng.uniform(0.25, 0.45) * canvas.unit)
        strength = rng.uniform(0.25, 0.4) if index == 0 else rng.uniform(0.15, 0.3)
        picture += (glow - picture) * (weight * strength)[..., None]

    centre_x, centre_y = canvas.width / 2, canvas.height / 2
    radius = ((xs - centre_x) / canvas.width) ** 2 + ((ys - centre_y) / canvas.height) ** 2
    picture *= (1 - 0.35 * radius)[..., None]
    return picture
