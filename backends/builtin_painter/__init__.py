"""The builtin painter: seeded procedural poster art from the brand palette.

No model and no network. numpy paints smooth gradients, soft light, layered
ribbons and shapes at a reduced working size (smooth layers lose nothing by
it), Pillow scales the result up, and film grain is added at full size, where
it also dithers the gradients so they never band. The text zone is faded into
a calm, evenly lit field so that a text panel over it reads well.

Same request, same bytes: every random choice comes from one
``numpy.random.default_rng(request.seed)``, never from global random state.

The modules, in the order a picture is made:

- ``painting``: ``paint_array`` and ``paint_png``, the whole picture step by step
- ``styles``: the styles, choosing one from the seed and the prompt's words
- ``colour``: brand hex colours, OKLab and LCh, the sRGB curve, fitting the gamut
- ``scheme``: the roles the brand palette plays (background pair, elements, shadow)
- ``canvas``: what every style paints with (size, zone, scheme, random stream)
- ``background``: the gradient with glows and vignette every style starts from
- ``shapes``: signed-distance shapes and stamping one onto a picture
- ``bokeh``, ``waves``, ``geometric``: one style each
- ``finishing``: calm text zone, tone mapping, resizing, film grain

``backends.builtin_image.BuiltinPainter`` is the backend around it; its revision
is the source of every module here, so any edit repaints what it cached.
"""

from __future__ import annotations

from backends.builtin_painter.painting import paint_array, paint_png
from backends.builtin_painter.styles import STYLES, Style, choose_style

__all__ = ["STYLES", "Style", "choose_style", "paint_array", "paint_png"]
