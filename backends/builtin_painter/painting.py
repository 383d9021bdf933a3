"""Painting a whole picture: from a request's size, seed, palette and zone to pixels or a PNG.

The order here is the order of the random draws (style, scheme, the style's own
draws, grain), and so part of what makes the same request paint the same bytes.
"""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from backends.builtin_painter.canvas import Canvas
from backends.builtin_painter.colour import linear_to_srgb, parse_hex
from backends.builtin_painter.finishing import (
    calm_text_zone,
    quantise_with_grain,
    resize_channels,
    tone_map,
)
from backends.builtin_painter.scheme import scheme_for
from backends.builtin_painter.styles import PAINTERS, draw_style
from hyperlocal.errors import ConfigurationError
from hyperlocal.layout.formats import Zone

# The painter works at most at this long side; the smooth art loses nothing and it keeps
# a 1-megapixel picture well under a second.
_WORK_LONG_SIDE = 640


def paint_png(
    width: int, height: int, seed: int, palette: list[str], zone: Zone, prompt: str = ""
) -> bytes:
    """Return PNG bytes of a ``width`` x ``height`` picture painted from ``seed``.

    Raises ``ConfigurationError`` when the palette is empty or an entry is not a hex colour.
    """
    pixels = paint_array(width, height, seed, palette, zone, prompt)
    buffer = io.BytesIO()
    # Grain makes the picture nearly incompressible, so heavier zlib levels only cost time.
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def paint_array(
    width: int, height: int, seed: int, palette: list[str], zone: Zone, prompt: str = ""
) -> NDArray[np.uint8]:
    """Return the painted picture as a ``(height, width, 3)`` uint8 array.

    Raises ``ConfigurationError`` when the palette is empty or an entry is not a hex colour.
    """
    brand = [parse_hex(colour) for colour in palette]
    if not brand:
        raise ConfigurationError("the palette is empty; give at least one brand colour")
    rng = np.random.default_rng(seed)
    style = draw_style(rng, prompt)
    scale = min(1.0, _WORK_LONG_SIDE / max(width, height))
    work_w, work_h = max(16, round(width * scale)), max(16, round(height * scale))
    canvas = Canvas(work_w, work_h, zone.pixels(work_w, work_h), scheme_for(brand, rng), rng)
    picture, calm = PAINTERS[style](canvas)
    linear = picture if calm is None else calm_text_zone(canvas, picture, calm)
    srgb = linear_to_srgb(tone_map(linear))
    full = resize_channels(srgb, width, height)
    return quantise_with_grain(full, rng)
