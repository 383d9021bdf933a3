"""The geometric style: bold shapes and confetti with soft drop shadows (Memphis, Bauhaus)."""

from __future__ import annotations

import math

import numpy as np

from backends.builtin_painter.background import background
from backends.builtin_painter.canvas import Canvas, smoothstep
from backends.builtin_painter.colour import FloatArray, lch_to_linear
from backends.builtin_painter.shapes import Sdf, random_shape, stamp


def paint_geometric(canvas: Canvas) -> tuple[FloatArray, FloatArray]:
    """Return bold shapes and confetti with soft drop shadows, and the bare background.

    The background is the calm field the text zone fades into. Never raises.
    """
    rng, scheme = canvas.rng, canvas.scheme
    calm = background(canvas)
    picture = calm.copy()
    unit = canvas.unit
    light_angle = rng.uniform(0.6, 1.0) * math.pi / 2
    shadow_dir = (math.cos(light_angle), math.sin(light_angle))
    shadow_tint = lch_to_linear(scheme.shadow)

    big = int(rng.integers(3, 6))
    small = int(rng.integers(8, 15))
    band_top, band_bottom = canvas.free_band()
    largest = min(0.24 * unit, 0.42 * (band_bottom - band_top))
    big_sizes = rng.uniform(0.5, 1.0, big) * largest
    sizes = np.concatenate([big_sizes, rng.uniform(0.02, 0.06, small) * unit])
    # Big pieces are plain bold forms; capsules and dot grids only come as confetti.
    shapes = [
        random_shape(rng, int(rng.integers(0, 7 if index >= big else 5)), float(size))
        for index, size in enumerate(sizes)
    ]
    places = canvas.points(np.array([extent for _, extent in shapes]), clearance=0.9)
    for index, ((sdf, extent), (cx, cy)) in enumerate(zip(shapes, places, strict=True)):
        colour = lch_to_linear(scheme.elements[int(rng.integers(len(scheme.elements)))])
        elevation = (0.035 if index < big else 0.018) * unit
        offset = (shadow_dir[0] * elevation, shadow_dir[1] * elevation)
        blur = elevation * 0.9 + 1.0

        def paint(
            region: FloatArray,
            x: FloatArray,
            y: FloatArray,
            dist: FloatArray,
            sdf: Sdf = sdf,
            colour: FloatArray = colour,
            offset: tuple[float, float] = offset,
            blur: float = blur,
            extent: float = extent,
        ) -> None:
            cast = 1 - smoothstep(-blur, blur, sdf(x - offset[0], y - offset[1]))
            region += (shadow_tint * region * 0.6 - region) * (0.5 * cast)[..., None]
            cover = np.clip(0.5 - dist / 0.9, 0, 1)[..., None]
            # Lighter towards the light, darker away: flat shapes gain a little volume.
            shade = 1 + 0.12 * (-(x * shadow_dir[0] + y * shadow_dir[1]) / max(extent, 1.0))
            region += (colour * shade[..., None] - region) * cover

        stamp(picture, float(cx), float(cy), extent + elevation + 2 * blur + 2, sdf, paint)
    return picture, calm
