"""The styles the painter knows, and choosing one from the seed and the prompt's words."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

import numpy as np

from backends.builtin_painter.bokeh import paint_bokeh
from backends.builtin_painter.canvas import Canvas
from backends.builtin_painter.colour import FloatArray
from backends.builtin_painter.geometric import paint_geometric
from backends.builtin_painter.waves import paint_waves

Style = Literal["bokeh", "waves", "geometric"]
#: The styles the painter knows, in the order the seed picks from.
STYLES: tuple[Style, ...] = ("bokeh", "waves", "geometric")

# Words in the image prompt that nudge the seed's choice of style towards one style. Whole
# words only (a trailing "s" is ignored), so "season" does not read as "sea".
_STYLE_WORDS: dict[Style, frozenset[str]] = {
    "bokeh": frozenset({"bokeh", "glow", "sparkle", "night", "festive", "candle", "lantern"}),
    "waves": frozenset({"wave", "wavy", "ribbon", "flow", "flowing", "fluid", "ocean", "sea"}),
    "geometric": frozenset({"geometric", "shape", "confetti", "memphis", "bauhaus", "triangle"}),
}

# A keyword multiplies its style's chance by this much (a nudge, not an order).
_KEYWORD_WEIGHT = 6.0


#: Each style paints on a canvas and returns its picture (linear RGB) and the calm field its
#: text zone fades into; None when the style keeps the zone calm by construction.
PAINTERS: dict[Style, Callable[[Canvas], tuple[FloatArray, FloatArray | None]]] = {
    "bokeh": paint_bokeh,
    "waves": paint_waves,
    "geometric": paint_geometric,
}


def draw_style(rng: np.random.Generator, prompt: str) -> Style:
    """Return a style drawn from ``rng`` (one draw), nudged by the prompt's words (never raises).

    A picture draws its style first from its stream, so ``choose_style`` can tell it ahead.
    """
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    words |= {word[:-1] for word in words if word.endswith("s")}
    weights = np.array([_KEYWORD_WEIGHT if words & _STYLE_WORDS[s] else 1.0 for s in STYLES])
    return STYLES[int(rng.choice(len(STYLES), p=weights / weights.sum()))]


def choose_style(seed: int, prompt: str = "") -> Style:
    """Return the style the painter uses for ``seed`` and ``prompt`` (never raises)."""
    return draw_style(np.random.default_rng(seed), prompt)
