"""The canvas every style paints with, and the smooth-step fields it is built from.

A ``Canvas`` holds the working size, the text zone in pixels, the colour scheme
and the one random stream; its helpers give pixel grids, the feathered zone
mask, the band the zone leaves free, and places for shapes clear of the zone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from backends.builtin_painter.colour import FloatArray
from backends.builtin_painter.scheme import Scheme

#: A pixel rectangle: ``(left, top, right, bottom)``.
Rect = tuple[int, int, int, int]


@dataclass
class Canvas:
    """What every style paints with: working size, text zone, colours and the random stream."""

    width: int
    height: int
    zone: Rect
    scheme: Scheme
    rng: np.random.Generator

    @property
    def unit(self) -> float:
        """The short side of the working picture; sizes are fractions of it."""
        return float(min(self.width, self.height))

    def grid(self) -> tuple[FloatArray, FloatArray]:
        """Return pixel-centre coordinates ``(x, y)`` of the whole working picture."""
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32)
        return xs + 0.5, ys + 0.5

    def zone_mask(self, feather: float) -> FloatArray:
        """Return 1 inside the text zone, easing to 0 over ``feather`` pixels outside it."""
        left, top, right, bottom = self.zone
        # A sliver of art between the zone and the picture's edge looks like a mistake, so the
        # calm reaches the edge wherever the zone nearly does.
        reach = max(1.5 * feather, 0.1 * self.unit)
        left, top = (0 if left < reach else left), (0 if top < reach else top)
        right = self.width if self.width - right < reach else right
        bottom = self.height if self.height - bottom < reach else bottom
        xs = np.arange(self.width, dtype=np.float32) + 0.5
        ys = np.arange(self.height, dtype=np.float32) + 0.5
        mask_x = _plateau(xs, left, right, feather)
        mask_y = _plateau(ys, top, bottom, feather)
        return (mask_y[:, None] * mask_x[None, :]).astype(np.float32)

    def free_band(self) -> tuple[float, float]:
        """Return the widest horizontal band (top, bottom) in pixels that the zone leaves free."""
        _, top, _, bottom = self.zone
        above, below = top, self.height - bottom
        if max(above, below) < 0.12 * self.height:
            return 0.0, float(self.height)
        return (0.0, float(top)) if above >= below else (float(bottom), float(self.height))

    def points(
        self, radii: NDArray[np.float64], clearance: float = 0.8, keep_inside: float = 0.06
    ) -> NDArray[np.float64]:
        """Return one centre per radius: clustered along a flowing path, clear of the zone.

        A centre keeps ``clearance`` times its radius away from the text zone, except for a
        ``keep_inside`` share that may stray in (the zone fades them out anyway).
        """
        rng = self.rng
        count = len(radii)
        band_top, band_bottom = self.free_band()
        band = band_bottom - band_top
        # A gentle curve through the free band gives the scatter a direction, like a design.
        start = band_top + band * rng.uniform(0.15, 0.85)
        end = band_top + band * rng.uniform(0.15, 0.85)
        bend = band_top + band * rng.uniform(-0.2, 1.2)
        drawn = max(16, count * 10)
        t = rng.random(drawn)
        xs = t * self.width * 1.2 - 0.1 * self.width
        ys = (1 - t) ** 2 * start + 2 * t * (1 - t) * bend + t**2 * end
        spread = rng.normal(0.0, 1.0, (drawn, 2)) * np.array([0.05, 0.14]) * self.unit
        along_path = np.stack([xs, ys], axis=1) + spread
        anywhere = rng.random((drawn, 2)) * np.array([self.width, self.height])
        use_path = rng.random(drawn) < 0.65
        candidates = np.where(use_path[:, None], along_path, anywhere)
        lucky = rng.random(drawn) < keep_inside
        left, top, right, bottom = self.zone
        gap_x = np.maximum(np.maximum(left - candidates[:, 0], candidates[:, 0] - right), 0)
        gap_y = np.maximum(np.maximum(top - candidates[:, 1], candidates[:, 1] - bottom), 0)
        gap = np.hypot(gap_x, gap_y)
        free = np.ones(drawn, dtype=bool)
        chosen = np.empty((count, 2))
        for index, radius in enumerate(radii):
            fits = free & ((gap >= clearance * radius) | lucky)
            # When nothing fits, the free candidate that intrudes least on the zone will do.
            least_bad = np.where(free, gap - clearance * radius, -np.inf)
            pick = int(np.argmax(fits)) if fits.any() else int(np.argmax(least_bad))
            free[pick] = False
            chosen[index] = candidates[pick]
        return chosen


def smoothstep(edge0: float, edge1: float, values: FloatArray) -> FloatArray:
    """Return 0 below ``edge0``, 1 above ``edge1`` and a smooth S-curve between (never raises).

    Equal edges make a hard step at that value.
    """
    if edge1 == edge0:
        return (values >= edge1).astype(np.float32)
    t = np.clip((values - edge0) / (edge1 - edge0), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _plateau(values: FloatArray, start: float, end: float, feather: float) -> FloatArray:
    """Return 1 between ``start`` and ``end``, easing to 0 over ``feather`` on either side."""
    return smoothstep(start - feather, start, values) * (1 - smoothstep(end, end + feather, values))
