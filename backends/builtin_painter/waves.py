"""The waves style: layered paper-cut ribbons flowing down to the text zone."""

from __future__ import annotations

import math

import numpy as np

from backends.builtin_painter.background import background
from backends.builtin_painter.canvas import Canvas, smoothstep
from backends.builtin_painter.colour import FloatArray, Lch, lch_to_linear


def paint_waves(canvas: Canvas) -> tuple[FloatArray, FloatArray | None]:
    """Return layered ribbons descending towards the text zone (the last one fills it).

    Only the last ribbon reaches the zone, so the zone is calm by construction and needs
    no fading (which would only blur the last crisp crest). A zone that leaves no room
    for ribbons gets the background as its calm field instead. Never raises.
    """
    rng, scheme = canvas.rng, canvas.scheme
    width, height = canvas.width, canvas.height
    _, zone_top, _, zone_bottom = canvas.zone
    # Ribbons flow in the free band and their last layer fills the zone; when the zone sits
    # high, paint upside down and flip at the end.
    flip = zone_top < height - zone_bottom
    edge = float(height - zone_bottom if flip else zone_top)
    cramped = edge < 0.12 * height
    if cramped:
        edge = 0.6 * height

    picture = background(canvas)
    calm = picture.copy() if cramped else None
    if flip:
        picture = picture[::-1].copy()
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5

    count = int(rng.integers(5, 8))
    first, second = scheme.background
    # From the sky through the element colours down to the brand's own background colour,
    # which becomes the calm field under the text.
    middle = rng.permutation(np.array(scheme.elements))[: max(1, count // 2 - 1)].tolist()
    anchors = [(float(a[0]), float(a[1]), float(a[2])) for a in [second, *middle]] + [first]
    # Sizes follow the free band, so a short band still holds a full set of ribbons.
    amplitude = rng.uniform(0.08, 0.14) * edge
    top_base = rng.uniform(-0.02, 0.12) * edge
    last_base = edge - 1.15 * amplitude
    tilt = rng.uniform(-0.08, 0.08) * height
    phases = rng.uniform(0, 2 * math.pi, 3)
    light_x = 1.0 if rng.random() < 0.5 else -1.0
    curves = []
    for index in range(count):
        share = index / (count - 1)
        base = top_base + (last_base - top_base) * share
        drift = rng.uniform(0.2, 0.6)
        waves = (
            0.65 * np.sin(2 * math.pi * (0.55 * xs + phases[0] / 6.28 + drift * share))
            + 0.25 * np.sin(2 * math.pi * (1.3 * xs + phases[1] / 6.28 - drift * share))
            + 0.10 * np.sin(2 * math.pi * (2.7 * xs + phases[2] / 6.28 + share))
        )
        curve = base + tilt * (xs - 0.5) * (1 - share) + amplitude * waves
        curves.append(curve.astype(np.float32))

    shadow_scale = 0.018 * height
    lit = (1.0 + 0.1 * light_x * (xs - 0.5))[None, :]
    for index, curve in enumerate(curves):
        # Only rows from this ribbon's shadow down to where the next ribbon fully covers it
        # can change, so the work stays proportional to the ribbon, not the picture.
        row_start = max(0, int(curve.min() - 6 * shadow_scale))
        row_end = height if index == count - 1 else min(height, int(curves[index + 1].max()) + 3)
        if row_start >= row_end:
            continue
        rows = ys[row_start:row_end]
        region = picture[row_start:row_end]
        slope = np.gradient(curve) if width > 1 else np.zeros_like(curve)
        # Vertical distance divided by the slope's stretch approximates the true distance.
        dist = (rows - curve[None, :]) / np.sqrt(1 + slope * slope)[None, :]
        shadow = np.exp(np.minimum(dist, 0) / shadow_scale) * (dist < 0.5)
        region *= (1 - 0.42 * shadow)[..., None]
        # Each ribbon is lit from one side and darkens away from its crest: a paper-cut look.
        shade = lit - 0.12 * smoothstep(0, 0.25 * height, dist)
        fill = lch_to_linear(_ramp(anchors, index / (count - 1))) * shade[..., None]
        crest = np.exp(-(((dist - 1.0) / 1.0) ** 2))[..., None] * 0.1
        fill += (1 - fill) * crest
        region += (fill - region) * smoothstep(-0.6, 0.6, dist)[..., None]

    if flip:
        picture = picture[::-1]
    return np.ascontiguousarray(picture, dtype=np.float32), calm


def _ramp(anchors: list[Lch], share: float) -> Lch:
    position = share * (len(anchors) - 1)
    index = min(int(position), len(anchors) - 2)
    t = position - index
    first, second = anchors[index], anchors[index + 1]
    # Blend in LCh along the shorter way round the hue circle: a straight OKLab line between
    # far-apart hues passes through grey and turns muddy.
    turn = (second[2] - first[2] + 180.0) % 360.0 - 180.0
    if min(first[1], second[1]) < 0.02:
        # A grey has no hue of its own: borrow the colourful end's.
        hue = second[2] if first[1] < second[1] else first[2]
        return (
            (1 - t) * first[0] + t * second[0],
            (1 - t) * first[1] + t * second[1],
            hue,
        )
    return (
        (1 - t) * first[0] + t * second[0],
        (1 - t) * first[1] + t * second[1],
        first[2] + t * turn,
    )
