"""Shapes as signed distance functions, a random pick of them, and stamping one onto a picture.

A shape is a function from pixel offsets to the distance from its edge, negative
inside, so one function gives a crisp edge, a soft one or a blurred shadow
depending on how the painter ramps the distance. Building or evaluating a shape never
raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from backends.builtin_painter.colour import FloatArray

#: A signed distance function: distance to a shape's edge, negative inside it.
Sdf = Callable[[FloatArray, FloatArray], FloatArray]


def stamp(
    picture: FloatArray,
    cx: float,
    cy: float,
    extent: float,
    sdf: Sdf,
    paint: Callable[[FloatArray, FloatArray, FloatArray, FloatArray], None],
) -> None:
    """Paint one shape centred at ``(cx, cy)`` that lies within ``extent`` pixels of it.

    ``paint`` gets the picture's region in the bounding box, the pixels' offsets from the
    centre (x, y) and their signed distance; ``sdf`` is evaluated only in that box, and a box
    wholly outside the picture paints nothing. Never raises.
    """
    height, width = picture.shape[:2]
    left, right = max(0, int(cx - extent)), min(width, int(cx + extent) + 1)
    top, bottom = max(0, int(cy - extent)), min(height, int(cy + extent) + 1)
    if left >= right or top >= bottom:
        return
    ys, xs = np.mgrid[top:bottom, left:right].astype(np.float32)
    local_x, local_y = xs + 0.5 - cx, ys + 0.5 - cy
    paint(picture[top:bottom, left:right], local_x, local_y, sdf(local_x, local_y))


def _rotate(x: FloatArray, y: FloatArray, angle: float) -> tuple[FloatArray, FloatArray]:
    cos, sin = math.cos(angle), math.sin(angle)
    return x * cos + y * sin, -x * sin + y * cos


def circle(radius: float) -> Sdf:
    """Return a disc of ``radius`` around the origin."""
    return lambda x, y: np.sqrt(x * x + y * y) - radius


def ring(radius: float, thickness: float) -> Sdf:
    """Return a ring of ``thickness`` centred on the circle of ``radius``."""
    return lambda x, y: np.abs(np.sqrt(x * x + y * y) - radius) - thickness / 2


def rounded_box(half_w: float, half_h: float, corner: float, angle: float) -> Sdf:
    """Return a box of half sides ``half_w``, ``half_h``, corners rounded by ``corner``, turned."""

    def sdf(x: FloatArray, y: FloatArray) -> FloatArray:
        rx, ry = _rotate(x, y, angle)
        qx, qy = np.abs(rx) - half_w + corner, np.abs(ry) - half_h + corner
        outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
        return outside + np.minimum(np.maximum(qx, qy), 0) - corner

    return sdf


def triangle(radius: float, angle: float) -> Sdf:
    """Return an equilateral triangle of side ``2 * radius``, turned by ``angle``."""
    root3 = math.sqrt(3.0)

    def sdf(x: FloatArray, y: FloatArray) -> FloatArray:
        px, py = _rotate(x, y, angle)
        px = np.abs(px) - radius
        py = py + radius / root3
        fold = px + root3 * py > 0
        px, py = (
            np.where(fold, (px - root3 * py) / 2, px),
            np.where(fold, (-root3 * px - py) / 2, py),
        )
        px = px - np.clip(px, -2 * radius, 0)
        return -np.sqrt(px * px + py * py) * np.sign(py)

    return sdf


def capsule(length: float, radius: float, angle: float) -> Sdf:
    """Return a segment of ``length`` thickened by ``radius`` (a pill), turned by ``angle``."""

    def sdf(x: FloatArray, y: FloatArray) -> FloatArray:
        rx, ry = _rotate(x, y, angle)
        rx = rx - np.clip(rx, -length / 2, length / 2)
        return np.sqrt(rx * rx + ry * ry) - radius

    return sdf


def half_disc(radius: float, angle: float) -> Sdf:
    """Return half a disc of ``radius`` on one side of a line through its centre at ``angle``."""

    def sdf(x: FloatArray, y: FloatArray) -> FloatArray:
        _, ry = _rotate(x, y, angle)
        return np.maximum(np.sqrt(x * x + y * y) - radius, ry)

    return sdf


def dot_grid(half: float, pitch: float, dot: float, angle: float) -> Sdf:
    """Return dots of radius ``dot`` every ``pitch`` in a square of half side ``half``, turned."""

    def sdf(x: FloatArray, y: FloatArray) -> FloatArray:
        rx, ry = _rotate(x, y, angle)
        cell_x = rx - pitch * np.round(rx / pitch)
        cell_y = ry - pitch * np.round(ry / pitch)
        dots = np.sqrt(cell_x * cell_x + cell_y * cell_y) - dot
        square = np.maximum(np.abs(rx), np.abs(ry)) - half
        return np.maximum(dots, square)

    return sdf


def random_shape(rng: np.random.Generator, kind: int, size: float) -> tuple[Sdf, float]:
    """Return one shape of ``kind`` (0-6) around ``size`` and the radius that encloses it."""
    angle = rng.uniform(0, 2 * math.pi)
    if kind == 0:
        return circle(size), size
    if kind == 1:
        thickness = size * rng.uniform(0.28, 0.4)
        return ring(size, thickness), size + thickness / 2
    if kind == 2:
        half_h = size * rng.uniform(0.5, 1.0)
        return rounded_box(size, half_h, size * 0.18, angle), math.hypot(size, half_h)
    if kind == 3:
        # An equilateral triangle's corners lie 2/sqrt(3) of its inner size from the centre.
        return triangle(size, angle), size * 1.16
    if kind == 4:
        return half_disc(size, angle), size
    if kind == 5:
        length = size * rng.uniform(2.0, 3.5)
        return capsule(length, size * 0.35, angle), length / 2 + size * 0.35
    half = size * 1.6
    return dot_grid(half, size * 0.5, size * 0.11, angle), half * math.sqrt(2)
