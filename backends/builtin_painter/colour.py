"""Colour maths of the builtin painter: brand hex colours, OKLab and LCh, sRGB encoding.

Colours are planned in OKLCh (lightness, chroma, hue), where even steps look
even, and painted in linear RGB, where light adds up; sRGB is only the last
step before quantising.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from hyperlocal.colors import srgb_to_linear, unit_rgb
from hyperlocal.errors import ConfigurationError

FloatArray = NDArray[np.float32]
#: An OKLCh colour: lightness 0..1, chroma (0 is grey), hue in degrees.
Lch = tuple[float, float, float]


def parse_hex(value: str) -> tuple[float, float, float]:
    """Return a brand hex colour's sRGB channels in 0..1.

    Raises ``ConfigurationError`` when ``value`` is not a hex colour.
    """
    try:
        return unit_rgb(value)
    except ValueError:
        raise ConfigurationError(
            f"palette colour {value!r} is not a hex colour such as #1F3A5F; fix the brand colours"
        ) from None


def linear_to_srgb(values: FloatArray) -> FloatArray:
    """Return linear-light values clipped to 0..1 and encoded with the sRGB curve (never raises)."""
    values = np.clip(values, 0.0, 1.0)
    curve = 1.055 * np.power(np.maximum(values, 0.0031308), 1 / 2.4) - 0.055
    return np.where(values <= 0.0031308, values * 12.92, curve).astype(np.float32)


_LMS_FROM_LINEAR = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ]
)
_LAB_FROM_LMS = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]
)
_LMS_FROM_LAB = np.linalg.inv(_LAB_FROM_LMS)
_LINEAR_FROM_LMS = np.linalg.inv(_LMS_FROM_LINEAR)


def linear_to_oklab(rgb: NDArray[np.floating]) -> NDArray[np.float64]:
    """Return linear RGB (last axis) as OKLab (never raises)."""
    lms = np.cbrt(np.asarray(rgb, dtype=np.float64) @ _LMS_FROM_LINEAR.T)
    return lms @ _LAB_FROM_LMS.T


def oklab_to_linear(lab: NDArray[np.floating]) -> NDArray[np.float64]:
    """Return OKLab (last axis) as linear RGB, possibly outside 0..1 (never raises)."""
    lms = (np.asarray(lab, dtype=np.float64) @ _LMS_FROM_LAB.T) ** 3
    return lms @ _LINEAR_FROM_LMS.T


def srgb_to_lch(srgb: tuple[float, float, float]) -> Lch:
    """Return an sRGB colour (channels 0..1) as OKLCh (never raises)."""
    lab = linear_to_oklab(srgb_to_linear(np.array(srgb, dtype=np.float64)))
    chroma, hue = math.hypot(lab[1], lab[2]), math.degrees(math.atan2(lab[2], lab[1]))
    return float(lab[0]), float(chroma), float(hue)


def lch_to_lab(colour: Lch) -> NDArray[np.float64]:
    """Return an OKLCh colour as an OKLab vector (never raises)."""
    light, chroma, hue = colour
    return np.array(
        [light, chroma * math.cos(math.radians(hue)), chroma * math.sin(math.radians(hue))]
    )


def lch_to_linear(colour: Lch) -> FloatArray:
    """Return ``colour`` in linear RGB, lowering chroma until it fits the sRGB gamut."""
    light, chroma, hue = colour
    low, high = 0.0, chroma
    rgb = oklab_to_linear(lch_to_lab((light, 0.0, hue)))
    # Bisection on chroma keeps lightness and hue, which is what the eye holds on to.
    for _ in range(14):
        mid = (low + high) / 2 if high > 0 else 0.0
        candidate = oklab_to_linear(lch_to_lab((light, mid, hue)))
        if np.all(candidate >= -1e-4) and np.all(candidate <= 1 + 1e-4):
            low, rgb = mid, candidate
        else:
            high = mid
        if high - low < 1e-4:
            break
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def shift(colour: Lch, light: float = 0.0, chroma: float = 1.0, hue: float = 0.0) -> Lch:
    """Return ``colour`` lighter by ``light``, its chroma times ``chroma``, hue turned by ``hue``.

    Lightness stays in 0..1 and chroma at or above 0; never raises.
    """
    return (
        float(np.clip(colour[0] + light, 0.0, 1.0)),
        max(0.0, colour[1] * chroma),
        colour[2] + hue,
    )


def distance(first: Lch, second: Lch) -> float:
    """Return how far apart two colours look: their Euclidean distance in OKLab."""
    return float(np.linalg.norm(lch_to_lab(first) - lch_to_lab(second)))
