"""Colours: brand hex colours parsed with Pillow's ``ImageColor``, and sRGB's linear light.

The brief takes colours as ``#RGB`` or ``#RRGGBB`` (the ``#`` may be left out);
everything downstream works with the normalised ``#RRGGBB`` form or with
channels in 0..1.
"""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import ImageColor

_HEX = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def hex_rgb(colour: str) -> tuple[int, int, int]:
    """Return the red, green and blue (0-255) of a hex colour (``#1F3A5F``, ``#fa0``, ``1F3A5F``).

    Raises ``ValueError`` naming the colour when it is not one.
    """
    match = _HEX.fullmatch(colour.strip()) if isinstance(colour, str) else None
    if match is None:
        raise ValueError(f"{colour!r} is not a hex colour such as #1F3A5F")
    red, green, blue = ImageColor.getrgb("#" + match.group(1))[:3]
    return red, green, blue


def unit_rgb(colour: str) -> tuple[float, float, float]:
    """Return a hex colour's channels in 0..1; raises ``ValueError`` when it is not one."""
    red, green, blue = hex_rgb(colour)
    return red / 255, green / 255, blue / 255


def normalise_hex(colour: str) -> str:
    """Return a hex colour as upper-case ``#RRGGBB``; raises ``ValueError`` when it is not one."""
    return "#{:02X}{:02X}{:02X}".format(*hex_rgb(colour))


def unit_hex(rgb: ArrayLike) -> str:
    """Return ``#RRGGBB`` for channels in 0..1 (clipped to that range)."""
    return "#" + "".join(f"{round(float(c) * 255):02X}" for c in np.clip(rgb, 0, 1))


def srgb_to_linear(values: ArrayLike) -> NDArray[np.floating]:
    """Return sRGB channel values (0..1) in linear light (the sRGB transfer curve undone).

    Float arrays keep their precision; anything else is computed in float64.
    """
    srgb = np.asarray(values)
    if not np.issubdtype(srgb.dtype, np.floating):
        srgb = srgb.astype(np.float64)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
