"""The builtin image backend: seeded procedural poster art from the brand palette.

No model and no network. numpy paints smooth gradients, soft light, layered
ribbons and shapes at a reduced working size (smooth layers lose nothing by
it), Pillow scales the result up, and film grain is added at full size, where
it also dithers the gradients so they never band. The text zone is faded into
a calm, evenly lit field so that a text panel over it reads well.

Same request, same bytes: every random choice comes from one
``numpy.random.default_rng(request.seed)``, never from global random state.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import PIL
from numpy.typing import NDArray
from PIL import Image

from backends.base import Health, ImageRequest
from backends.source_revision import module_revision
from hyperlocal.colors import srgb_to_linear, unit_rgb
from hyperlocal.errors import ConfigurationError
from hyperlocal.layout.formats import Zone
from hyperlocal.models import BackendIdentity, GeneratedImage, PromptSyntax
from hyperlocal.prompts.clip_tokens import TokenCounter, clip_counter

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

# The painter works at most at this long side; the smooth art loses nothing and it keeps
# a 1-megapixel picture well under a second.
_WORK_LONG_SIDE = 640
# A keyword multiplies its style's chance by this much (a nudge, not an order).
_KEYWORD_WEIGHT = 6.0


FloatArray = NDArray[np.float32]
Lch = tuple[float, float, float]
Rect = tuple[int, int, int, int]
#: A signed distance function: distance to a shape's edge, negative inside it.
Sdf = Callable[[FloatArray, FloatArray], FloatArray]


class BuiltinPainter:
    """Paints abstract poster backgrounds from the brand palette, with no model at all."""

    def __init__(self) -> None:
        """Build the painter; it needs nothing and never fails."""
        # The painter is code, not weights: its source is its revision, so an edit here
        # invalidates exactly the pictures it cached.
        self._identity = BackendIdentity(
            role="image",
            kind="builtin",
            model="procedural-painter",
            revision=module_revision(__name__),
        )

    @property
    def identity(self) -> BackendIdentity:
        """What paints: the builtin procedural painter at this module's source revision."""
        return self._identity

    def health(self) -> Health:
        """Return that the painter is ready; it has no model to load and cannot be down."""
        return Health(
            role="image",
            kind="builtin",
            ok=True,
            detail=(
                f"procedural painter ready (numpy {np.__version__}, Pillow {PIL.__version__}); "
                f"styles: {', '.join(STYLES)}"
            ),
            models=["procedural-painter"],
        )

    @property
    def prompt_syntax(self) -> PromptSyntax:
        """One plain prompt: the painter reads words of it, with no emphasis or chunks."""
        return PromptSyntax()

    def token_counters(self) -> list[TokenCounter]:
        """Count with the real CLIP BPE, so prompts fit the SDXL models that replace it."""
        return [clip_counter()]

    def generate(self, request: ImageRequest) -> GeneratedImage:
        """Return one RGB PNG of exactly the requested size, the same bytes for the same request.

        Raises ``ConfigurationError`` when a palette entry is not a hex colour.
        """
        png = paint_png(
            width=request.width,
            height=request.height,
            seed=request.seed,
            palette=request.palette,
            zone=request.text_zone,
            prompt=request.prompt.prompt,
        )
        return GeneratedImage(
            png=png,
            width=request.width,
            height=request.height,
            seed=request.seed,
            attempt=request.attempt,
            backend=self._identity,
        )


def choose_style(seed: int, prompt: str = "") -> Style:
    """Return the style the painter uses for ``seed`` and ``prompt`` (never raises)."""
    return _choose_style(np.random.default_rng(seed), prompt)


def paint_png(
    width: int, height: int, seed: int, palette: list[str], zone: Zone, prompt: str = ""
) -> bytes:
    """Return PNG bytes of a ``width`` x ``height`` picture painted from ``seed``.

    Raises ``ConfigurationError`` when a palette entry is not a hex colour.
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

    Raises ``ConfigurationError`` when a palette entry is not a hex colour.
    """
    brand = [_parse_hex(colour) for colour in palette]
    if not brand:
        raise ConfigurationError("the palette is empty; give at least one brand colour")
    rng = np.random.default_rng(seed)
    style = _choose_style(rng, prompt)
    scale = min(1.0, _WORK_LONG_SIDE / max(width, height))
    work_w, work_h = max(16, round(width * scale)), max(16, round(height * scale))
    canvas = _Canvas(work_w, work_h, zone.pixels(work_w, work_h), _scheme(brand, rng), rng)
    picture, calm = _PAINTERS[style](canvas)
    linear = picture if calm is None else _calm_text_zone(canvas, picture, calm)
    srgb = _linear_to_srgb(_tone_map(linear))
    full = _resize_channels(srgb, width, height)
    return _quantise_with_grain(full, rng)


# --- colour ---------------------------------------------------------------------------------


def _parse_hex(value: str) -> tuple[float, float, float]:
    try:
        return unit_rgb(value)
    except ValueError:
        raise ConfigurationError(
            f"palette colour {value!r} is not a hex colour such as #1F3A5F; fix the brand colours"
        ) from None


def _linear_to_srgb(values: FloatArray) -> FloatArray:
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


def _linear_to_oklab(rgb: NDArray[np.floating]) -> NDArray[np.float64]:
    lms = np.cbrt(np.asarray(rgb, dtype=np.float64) @ _LMS_FROM_LINEAR.T)
    return lms @ _LAB_FROM_LMS.T


def _oklab_to_linear(lab: NDArray[np.floating]) -> NDArray[np.float64]:
    lms = (np.asarray(lab, dtype=np.float64) @ _LMS_FROM_LAB.T) ** 3
    return lms @ _LINEAR_FROM_LMS.T


def _to_lch(srgb: tuple[float, float, float]) -> Lch:
    lab = _linear_to_oklab(srgb_to_linear(np.array(srgb, dtype=np.float64)))
    chroma, hue = math.hypot(lab[1], lab[2]), math.degrees(math.atan2(lab[2], lab[1]))
    return float(lab[0]), float(chroma), float(hue)


def _lab(colour: Lch) -> NDArray[np.float64]:
    light, chroma, hue = colour
    return np.array(
        [light, chroma * math.cos(math.radians(hue)), chroma * math.sin(math.radians(hue))]
    )


def _lin(colour: Lch) -> FloatArray:
    """Return ``colour`` in linear RGB, lowering chroma until it fits the sRGB gamut."""
    light, chroma, hue = colour
    low, high = 0.0, chroma
    rgb = _oklab_to_linear(_lab((light, 0.0, hue)))
    # Bisection on chroma keeps lightness and hue, which is what the eye holds on to.
    for _ in range(14):
        mid = (low + high) / 2 if high > 0 else 0.0
        candidate = _oklab_to_linear(_lab((light, mid, hue)))
        if np.all(candidate >= -1e-4) and np.all(candidate <= 1 + 1e-4):
            low, rgb = mid, candidate
        else:
            high = mid
        if high - low < 1e-4:
            break
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def _shift(colour: Lch, light: float = 0.0, chroma: float = 1.0, hue: float = 0.0) -> Lch:
    return (
        float(np.clip(colour[0] + light, 0.0, 1.0)),
        max(0.0, colour[1] * chroma),
        colour[2] + hue,
    )


def _distance(first: Lch, second: Lch) -> float:
    return float(np.linalg.norm(_lab(first) - _lab(second)))


@dataclass(frozen=True)
class _Scheme:
    """The roles the palette plays: a background pair, element colours and a shadow tint."""

    dark: bool
    background: tuple[Lch, Lch]
    elements: tuple[Lch, ...]
    shadow: Lch


def _scheme(brand_srgb: list[tuple[float, float, float]], rng: np.random.Generator) -> _Scheme:
    brand = [_to_lch(colour) for colour in brand_srgb]
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
    second = _shift(base, light=-0.09 if dark else -0.07, chroma=1.1, hue=hue_turn)
    second = (max(second[0], 0.16), second[1], second[2])

    # Elements must stand apart from the background, or the picture has no structure.
    elements = [t for t in tones if _distance(t, base) > 0.09 and abs(t[0] - base[0]) > 0.06]
    if len(elements) < 3:
        direction = 1.0 if dark else -1.0
        elements += [
            _shift(base, light=direction * step, chroma=1.15, hue=side * 20.0 * i)
            for i, step in enumerate((0.22, 0.34, 0.46), start=1)
        ]
    elements = [(float(np.clip(e[0], 0.2, 0.95)), e[1], e[2]) for e in elements]
    shadow = _shift(second, light=-0.12, chroma=1.2)
    return _Scheme(
        dark=dark,
        background=(base, second),
        elements=tuple(elements),
        shadow=(max(shadow[0], 0.12), shadow[1], shadow[2]),
    )


# --- canvas and helpers -----------------------------------------------------------------------


@dataclass
class _Canvas:
    """What every style paints with: working size, text zone, colours and the random stream."""

    width: int
    height: int
    zone: Rect
    scheme: _Scheme
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


def _smoothstep(edge0: float, edge1: float, values: FloatArray) -> FloatArray:
    if edge1 == edge0:
        return (values >= edge1).astype(np.float32)
    t = np.clip((values - edge0) / (edge1 - edge0), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _plateau(values: FloatArray, start: float, end: float, feather: float) -> FloatArray:
    """Return 1 between ``start`` and ``end``, easing to 0 over ``feather`` on either side."""
    return _smoothstep(start - feather, start, values) * (
        1 - _smoothstep(end, end + feather, values)
    )


def _gaussian(canvas: _Canvas, cx: float, cy: float, sigma: float) -> FloatArray:
    xs = (np.arange(canvas.width, dtype=np.float32) + 0.5 - cx) / sigma
    ys = (np.arange(canvas.height, dtype=np.float32) + 0.5 - cy) / sigma
    # Separable: two 1-D exponentials and one outer product instead of a full-size exp.
    return np.outer(np.exp(-0.5 * ys * ys), np.exp(-0.5 * xs * xs)).astype(np.float32)


def _background(canvas: _Canvas) -> FloatArray:
    """Return an OKLab gradient between the background pair, with soft glows and a vignette."""
    rng = canvas.rng
    first, second = canvas.scheme.background
    angle = rng.uniform(0, 2 * math.pi)
    xs, ys = canvas.grid()
    along = (xs * math.cos(angle) + ys * math.sin(angle)).astype(np.float32)
    along = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    # Sample the gradient in OKLab (even steps to the eye), then look it up per pixel.
    stops = np.linspace(0, 1, 64)
    lab = (1 - stops)[:, None] * _lab(first) + stops[:, None] * _lab(second)
    table = np.clip(_oklab_to_linear(lab), 0, 1).astype(np.float32)
    eased = _smoothstep(0.0, 1.0, along)
    picture = np.stack([np.interp(eased, stops, table[:, c]) for c in range(3)], axis=-1)
    picture = picture.astype(np.float32)

    band_top, band_bottom = canvas.free_band()
    for index in range(2):
        # Glows stay near the background's hue: a complementary glow would mix to mud.
        glow = _lin(_shift(first, 0.14 if index == 0 else 0.08, 1.5, 28 if index == 0 else -24))
        cx = rng.uniform(0.1, 0.9) * canvas.width
        cy = rng.uniform(band_top, band_bottom)
        weight = _gaussian(canvas, cx, cy, rng.uniform(0.25, 0.45) * canvas.unit)
        strength = rng.uniform(0.25, 0.4) if index == 0 else rng.uniform(0.15, 0.3)
        picture += (glow - picture) * (weight * strength)[..., None]

    centre_x, centre_y = canvas.width / 2, canvas.height / 2
    radius = ((xs - centre_x) / canvas.width) ** 2 + ((ys - centre_y) / canvas.height) ** 2
    picture *= (1 - 0.35 * radius)[..., None]
    return picture


def _stamp(
    picture: FloatArray,
    cx: float,
    cy: float,
    extent: float,
    sdf: Sdf,
    paint: Callable[[FloatArray, FloatArray, FloatArray, FloatArray], None],
) -> None:
    """Paint one shape: ``sdf`` is evaluated only in the shape's bounding box."""
    height, width = picture.shape[:2]
    left, right = max(0, int(cx - extent)), min(width, int(cx + extent) + 1)
    top, bottom = max(0, int(cy - extent)), min(height, int(cy + extent) + 1)
    if left >= right or top >= bottom:
        return
    ys, xs = np.mgrid[top:bottom, left:right].astype(np.float32)
    local_x, local_y = xs + 0.5 - cx, ys + 0.5 - cy
    paint(picture[top:bottom, left:right], local_x, local_y, sdf(local_x, local_y))


# --- shapes as signed distance functions (negative inside) ------------------------------------


def _rotate(x: FloatArray, y: FloatArray, angle: float) -> tuple[FloatArray, FloatArray]:
    cos, sin = math.cos(angle), math.sin(angle)
    return x * cos + y * sin, -x * sin + y * cos


def _circle(radius: float) -> Sdf:
    return lambda x, y: np.sqrt(x * x + y * y) - radius


def _ring(radius: float, thickness: float) -> Sdf:
    return lambda x, y: np.abs(np.sqrt(x * x + y * y) - radius) - thickness / 2


def _rounded_box(half_w: float, half_h: float, corner: float, angle: float) -> Sdf:
    def sdf(x: FloatArray, y: FloatArray) -> FloatArray:
        rx, ry = _rotate(x, y, angle)
        qx, qy = np.abs(rx) - half_w + corner, np.abs(ry) - half_h + corner
        outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
        return outside + np.minimum(np.maximum(qx, qy), 0) - corner

    return sdf


def _triangle(radius: float, angle: float) -> Sdf:
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


def _capsule(length: float, radius: float, angle: float) -> Sdf:
    def sdf(x: FloatArray, y: FloatArray) -> FloatArray:
        rx, ry = _rotate(x, y, angle)
        rx = rx - np.clip(rx, -length / 2, length / 2)
        return np.sqrt(rx * rx + ry * ry) - radius

    return sdf


def _half_disc(radius: float, angle: float) -> Sdf:
    def sdf(x: FloatArray, y: FloatArray) -> FloatArray:
        _, ry = _rotate(x, y, angle)
        return np.maximum(np.sqrt(x * x + y * y) - radius, ry)

    return sdf


def _dot_grid(half: float, pitch: float, dot: float, angle: float) -> Sdf:
    def sdf(x: FloatArray, y: FloatArray) -> FloatArray:
        rx, ry = _rotate(x, y, angle)
        cell_x = rx - pitch * np.round(rx / pitch)
        cell_y = ry - pitch * np.round(ry / pitch)
        dots = np.sqrt(cell_x * cell_x + cell_y * cell_y) - dot
        square = np.maximum(np.abs(rx), np.abs(ry)) - half
        return np.maximum(dots, square)

    return sdf


# --- the styles -------------------------------------------------------------------------------


def _paint_bokeh(canvas: _Canvas) -> tuple[FloatArray, FloatArray]:
    """Soft out-of-focus lights in three depths over a glowing gradient."""
    rng, scheme = canvas.rng, canvas.scheme
    calm = _background(canvas)
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
            colour = _lin(_shift(lights[int(rng.integers(len(lights)))], hue=rng.normal(0, 6)))
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
                body = 1 - _smoothstep(-soft, soft, dist)
                # Real bokeh discs are a little brighter at the rim.
                rim = np.exp(-(((dist + 1.2 * soft) / (1.5 * soft + 1.0)) ** 2)) * 0.18
                weight = ((body * (0.8 + rim)) * alpha)[..., None]
                if scheme.dark:
                    region[:] = 1 - (1 - region) * (1 - colour * weight)
                else:
                    # On a light ground lights are tinted discs with a pale rim, never grey.
                    region += (colour - region) * (body * min(alpha * 2.0, 0.85))[..., None]
                    region += (1 - region) * (rim * body * alpha)[..., None]

            _stamp(picture, cx, cy, radius + 2 * soft + 2, _circle(radius), paint)
    return picture, calm


def _paint_waves(canvas: _Canvas) -> tuple[FloatArray, FloatArray | None]:
    """Layered flowing ribbons that descend towards the text zone; the last one fills it.

    Only the last ribbon reaches the zone, so the zone is calm by construction and needs
    no fading (which would only blur the last crisp crest). A zone that leaves no room
    for ribbons gets the background as its calm field instead.
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

    picture = _background(canvas)
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
        shade = lit - 0.12 * _smoothstep(0, 0.25 * height, dist)
        fill = _lin(_ramp(anchors, index / (count - 1))) * shade[..., None]
        crest = np.exp(-(((dist - 1.0) / 1.0) ** 2))[..., None] * 0.1
        fill += (1 - fill) * crest
        region += (fill - region) * _smoothstep(-0.6, 0.6, dist)[..., None]

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


def _paint_geometric(canvas: _Canvas) -> tuple[FloatArray, FloatArray]:
    """Bold shapes and confetti with soft drop shadows, in the spirit of Memphis and Bauhaus."""
    rng, scheme = canvas.rng, canvas.scheme
    calm = _background(canvas)
    picture = calm.copy()
    unit = canvas.unit
    light_angle = rng.uniform(0.6, 1.0) * math.pi / 2
    shadow_dir = (math.cos(light_angle), math.sin(light_angle))
    shadow_tint = _lin(scheme.shadow)

    big = int(rng.integers(3, 6))
    small = int(rng.integers(8, 15))
    band_top, band_bottom = canvas.free_band()
    largest = min(0.24 * unit, 0.42 * (band_bottom - band_top))
    big_sizes = rng.uniform(0.5, 1.0, big) * largest
    sizes = np.concatenate([big_sizes, rng.uniform(0.02, 0.06, small) * unit])
    # Big pieces are plain bold forms; capsules and dot grids only come as confetti.
    shapes = [
        _shape(rng, int(rng.integers(0, 7 if index >= big else 5)), float(size))
        for index, size in enumerate(sizes)
    ]
    places = canvas.points(np.array([extent for _, extent in shapes]), clearance=0.9)
    for index, ((sdf, extent), (cx, cy)) in enumerate(zip(shapes, places, strict=True)):
        colour = _lin(scheme.elements[int(rng.integers(len(scheme.elements)))])
        elevation = (0.035 if index < big else 0.018) * unit
        offset = (shadow_dir[0] * elevation, shadow_dir[1] * elevation)
        blur = elevation * 0.9 + 1.0

        def paint(
            region: FloatArray,
            x: FloatArray,
            y: FloatArray,
            dist: FloatArray,
            sdf: Sdf = sdf,
            colour: FloatArray = colour,
            offset: tuple[float, float] = offset,
            blur: float = blur,
            extent: float = extent,
        ) -> None:
            cast = 1 - _smoothstep(-blur, blur, sdf(x - offset[0], y - offset[1]))
            region += (shadow_tint * region * 0.6 - region) * (0.5 * cast)[..., None]
            cover = np.clip(0.5 - dist / 0.9, 0, 1)[..., None]
            # Lighter towards the light, darker away: flat shapes gain a little volume.
            shade = 1 + 0.12 * (-(x * shadow_dir[0] + y * shadow_dir[1]) / max(extent, 1.0))
            region += (colour * shade[..., None] - region) * cover

        _stamp(picture, float(cx), float(cy), extent + elevation + 2 * blur + 2, sdf, paint)
    return picture, calm


def _shape(rng: np.random.Generator, kind: int, size: float) -> tuple[Sdf, float]:
    """Return one shape of ``kind`` (0-6) around ``size`` and the radius that encloses it."""
    angle = rng.uniform(0, 2 * math.pi)
    if kind == 0:
        return _circle(size), size
    if kind == 1:
        thickness = size * rng.uniform(0.28, 0.4)
        return _ring(size, thickness), size + thickness / 2
    if kind == 2:
        half_h = size * rng.uniform(0.5, 1.0)
        return _rounded_box(size, half_h, size * 0.18, angle), math.hypot(size, half_h)
    if kind == 3:
        # An equilateral triangle's corners lie 2/sqrt(3) of its inner size from the centre.
        return _triangle(size, angle), size * 1.16
    if kind == 4:
        return _half_disc(size, angle), size
    if kind == 5:
        length = size * rng.uniform(2.0, 3.5)
        return _capsule(length, size * 0.35, angle), length / 2 + size * 0.35
    half = size * 1.6
    return _dot_grid(half, size * 0.5, size * 0.11, angle), half * math.sqrt(2)


# Each style returns its picture and the calm field its text zone fades into; None when the
# style keeps the zone calm by construction.
_PAINTERS: dict[Style, Callable[[_Canvas], tuple[FloatArray, FloatArray | None]]] = {
    "bokeh": _paint_bokeh,
    "waves": _paint_waves,
    "geometric": _paint_geometric,
}


def _choose_style(rng: np.random.Generator, prompt: str) -> Style:
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    words |= {word[:-1] for word in words if word.endswith("s")}
    weights = np.array([_KEYWORD_WEIGHT if words & _STYLE_WORDS[s] else 1.0 for s in STYLES])
    return STYLES[int(rng.choice(len(STYLES), p=weights / weights.sum()))]


# --- finishing --------------------------------------------------------------------------------


def _calm_text_zone(canvas: _Canvas, picture: FloatArray, calm: FloatArray) -> FloatArray:
    """Fade the text zone into ``calm`` with a feathered edge and even out its lighting."""
    left, top, right, bottom = canvas.zone
    band_top, band_bottom = canvas.free_band()
    # A wide feather is soft, but it must not swallow a narrow free band.
    feather = min(0.1 * canvas.unit, 0.3 * (band_bottom - band_top))
    mask = canvas.zone_mask(feather)
    inside = calm[top:bottom, left:right].reshape(-1, 3).mean(axis=0)
    # Pull the calm field towards its own mean so the text panel sits on even light.
    flat = calm + (inside - calm) * 0.6
    # A faint ghost of the art stays, so the zone reads as depth rather than a hole.
    return picture + (flat - picture) * (0.96 * mask)[..., None]


def _tone_map(linear: FloatArray) -> FloatArray:
    """Roll off highlights smoothly below white and lift the blackest shadows a touch."""
    knee = 0.72
    over = np.maximum(linear - knee, 0)
    shoulder = knee + (0.94 - knee) * np.tanh(over / (0.94 - knee))
    mapped = np.where(linear > knee, shoulder, linear)
    return (0.006 + 0.994 * mapped).astype(np.float32)


def _resize_channels(srgb: FloatArray, width: int, height: int) -> FloatArray:
    if srgb.shape[1] == width and srgb.shape[0] == height:
        return srgb
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(srgb[..., c])).resize(
                (width, height), Image.Resampling.BICUBIC
            )
        )
        for c in range(3)
    ]
    return np.stack(channels, axis=-1)


def _quantise_with_grain(srgb: FloatArray, rng: np.random.Generator) -> NDArray[np.uint8]:
    height, width = srgb.shape[:2]
    # Monochrome grain of about 2.5 levels at a megapixel: filmic texture that also dithers
    # every gradient. A small picture is shown enlarged, so its grain is made fainter to look
    # the same; it never drops below what dithering needs.
    strength = 2.5 * float(np.clip(math.sqrt(width * height / 1e6), 0.4, 1.0))
    grain = rng.standard_normal((height, width), dtype=np.float32) * (strength / 255)
    values = (srgb + grain[..., None]) * 255 + 0.5
    return np.clip(values, 0, 255).astype(np.uint8)
