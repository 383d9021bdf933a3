"""The bokeh style: soft out-of-focus lights in three depths over a glowing gradient."""

from __future__ import annotations

import numpy as np

from backends.builtin_painter.background import background
from backends.builtin_painter.canvas import Canvas, smoothstep
from backends.builtin_painter.colour import FloatArray, lch_to_linear, shift
from backends.builtin_painter.shapes import circle, stamp


def paint_bokeh(canvas: Canvas) -> tuple[FloatArray, FloatArray]:
    """Return soft lights in three depths over a glowing gradient, and the bare gradient.

    The gradient is the calm field the text zone fades into. Never raises.
    """
    rng, scheme = canvas.rng, canvas.scheme
    calm = background(canvas)
    picture = calm.copy()
    # Lights glow on a dark ground; on a light one the colourful, deeper tones carry them.
    if scheme.dark:
        lights = sorted(scheme.elements, key=lambda colour: -colour[0])[:4]
    else:
        # On a light ground: the brand's brighter colourful tones and pale tints, never mud.
        base = scheme.background[0]
        bright = [c for c in scheme.elements if c[0] >= base[0] - 0.25] or list(scheme.elements)
        lights = sorted(bright, key=lambda colour: -colour[1])[:3]
        lights.append((min(0.97, base[0] + 0.12), base[1] * 0.5, base[2]))
    # Far lights are small and faint, near ones large and very soft: that reads as depth.
    layers = (
        (int(rng.integers(26, 40)), (0.012, 0.03), 0.35, (0.25, 0.5)),
        (int(rng.integers(14, 22)), (0.03, 0.065), 0.12, (0.22, 0.42)),
        (int(rng.integers(5, 9)), (0.08, 0.15), 0.5, (0.1, 0.2)),
    )
    for count, (r_min, r_max), softness, (a_min, a_max) in layers:
        radii = rng.uniform(r_min, r_max, count) * canvas.unit
        for radius, (cx, cy) in zip(radii, canvas.points(radii), strict=True):
            soft = max(0.8, softness * radius)
            colour = lch_to_linear(
                shift(lights[int(rng.integers(len(lights)))], hue=rng.normal(0, 6))
            )
            alpha = rng.uniform(a_min, a_max)

            def paint(
                region: FloatArray,
                _x: FloatArray,
                _y: FloatArray,
                dist: FloatArray,
                colour: FloatArray = colour,
                alpha: float = alpha,
                soft: float = soft,
            ) -> None:
                body = 1 - smoothstep(-soft, soft, dist)
                # Real bokeh discs are a little brighter at the rim.
                rim = np.exp(-(((dist + 1.2 * soft) / (1.5 * soft + 1.0)) ** 2)) * 0.18
                weight = ((body * (0.8 + rim)) * alpha)[..., None]
                if scheme.dark:
                    region[:] = 1 - (1 - region) * (1 - colour * weight)
                else:
                    # On a light ground lights are tinted discs with a pale rim, never grey.
                    region += (colour - region) * (body * min(alpha * 2.0, 0.85))[..., None]
                    region += (1 - region) * (rim * body * alpha)[..., None]

            stamp(picture, cx, cy, radius + 2 * soft + 2, circle(radius), paint)
    return picture, calm
