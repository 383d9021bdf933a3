"""The colour scheme: the roles a brand palette plays in a picture.

The brand's colours become a background pair, element colours that stand apart
from it, and a shadow tint; a short palette is filled out to a full lightness
ramp around the brand's hue, so a one-colour brand still gets a rich picture.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from backends.builtin_painter.colour import Lch, distance, shift, srgb_to_lch


@dataclass(frozen=True)
class Scheme:
    """The roles the palette plays: a background pair, element colours and a shadow tint."""

    dark: bool
    background: tuple[Lch, Lch]
    elements: tuple[Lch, ...]
    shadow: Lch


def scheme_for(brand_srgb: list[tuple[float, float, float]], rng: np.random.Generator) -> Scheme:
    """Return the scheme for the brand's sRGB colours (at least one), drawing two coin flips.

    Raises ``IndexError`` when ``brand_srgb`` is empty (the caller refuses that first).
    """
    brand = [srgb_to_lch(colour) for colour in brand_srgb]
    primary = brand[0]
    colourful = max(brand, key=lambda colour: colour[1])
    neutral = colourful[1] < 0.015
    # Derived tones turn around the primary's hue, or the most colourful brand colour's
    # when the primary is a grey; a grey brand stays grey.
    hue_source = primary if primary[1] >= 0.015 or neutral else colourful
    # A nearly grey brand (cream, stone) gets quiet relatives: little chroma, close hues.
    spread = float(np.clip(colourful[1] / 0.08, 0.35, 1.0))
    base_chroma = 0.0 if neutral else max(hue_source[1], 0.05 * spread)
    dark = primary[0] < 0.62

    # Pure black or white would clip and leave nothing to shade, so lightness stays inside.
    tones = [(float(np.clip(c[0], 0.2, 0.95)), c[1], c[2]) for c in brand]
    low, high = (0.34, 0.9) if dark else (0.42, 0.86)
    side = 1.0 if rng.random() < 0.5 else -1.0
    hue_offsets = [spread * h for h in (side * 30.0, -side * 30.0, side * 14.0, -side * 48.0, 0)]
    for offset in hue_offsets:
        if len(tones) >= 6:
            break
        # Fill the widest lightness gap, so even a one-colour brand gets a full ramp.
        levels = sorted({low, high, *(float(np.clip(t[0], low, high)) for t in tones)})
        gap_start, gap_end = max(itertools.pairwise(levels), key=lambda p: p[1] - p[0])
        light = (gap_start + gap_end) / 2
        chroma = base_chroma * max(0.35, 1.0 - 1.8 * abs(light - 0.62))
        tones.append((light, chroma, hue_source[2] + offset))

    base = (float(np.clip(primary[0], 0.18, 0.62 if dark else 0.95)), primary[1], primary[2])
    if not dark:
        base = (max(base[0], 0.66), base[1], base[2])
    hue_turn = 12.0 if rng.random() < 0.5 else -12.0
    second = shift(base, light=-0.09 if dark else -0.07, chroma=1.1, hue=hue_turn)
    second = (max(second[0], 0.16), second[1], second[2])

    # Elements must stand apart from the background, or the picture has no structure.
    elements = [t for t in tones if distance(t, base) > 0.09 and abs(t[0] - base[0]) > 0.06]
    if len(elements) < 3:
        direction = 1.0 if dark else -1.0
        elements += [
            shift(base, light=direction * step, chroma=1.15, hue=side * 20.0 * i)
            for i, step in enumerate((0.22, 0.34, 0.46), start=1)
        ]
    elements = [(float(np.clip(e[0], 0.2, 0.95)), e[1], e[2]) for e in elements]
    shadow = shift(second, light=-0.12, chroma=1.2)
    return Scheme(
        dark=dark,
        background=(base, second),
        elements=tuple(elements),
        shadow=(max(shadow[0], 0.12), shadow[1], shadow[2]),
    )
