"""Typesetting: fonts, text colours measured from the picture, QR codes and the Typst render.

Pure Python (no Prefect). One data-driven template (``templates/flyer.typ``)
lays out every format: this module writes what the template needs into a
throw-away job folder (``data.json``, the picture, the logo, the QR code) and
compiles it with typst-py. Everything a user or a model wrote reaches Typst
only as JSON data, never as markup, so ``#read(...)`` in a headline prints as
text instead of running.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import io
import json
import math
import shutil
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import segno
import typst
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFilter, ImageFont, UnidentifiedImageError

from hyperlocal.errors import AssetError, InvalidImage, LayoutError
from hyperlocal.formats import FlyerFormat, Zone
from hyperlocal.models import Brief, FlyerCopy, TextStyle

#: The Python packages that ship the layout fonts; each has a ``files/`` folder.
FONT_PACKAGES: tuple[str, ...] = (
    "font_fjallaone",
    "font_lato",
    "font_roboto",
    "font_source_sans_pro",
)
#: The flyer template of a source checkout (``templates/flyer.typ`` beside the package).
DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "flyer.typ"

WHITE = "#FFFFFF"
#: Near-black for text on light panels: softer than pure black, still over 18:1 on white.
INK = "#111418"
BLACK = "#000000"

#: WCAG 2 AA contrast for normal-size text, and for large text and graphics.
TEXT_CONTRAST = 4.5
ACCENT_CONTRAST = 3.0
#: A panel colour must reach this contrast with its text on its own (at full opacity),
#: so that a partly see-through panel still has room to reach TEXT_CONTRAST.
PANEL_CONTRAST = 9.0
#: Share of the pixels under the panel that must meet the contrast: the worst 2 %
#: (specks, noise) are ignored, the rest is the worst case.
COVERED_SHARE = 98.0
#: Panels are never more see-through than this, even over a calm picture: text on a
#: nearly invisible panel looks unfinished and texture the percentile ignores still hurts.
MIN_PANEL_OPACITY = 0.75

_FONT_SUFFIXES = {".ttf", ".otf"}


# --------------------------------------------------------------------------- fonts


@functools.cache
def _font_files() -> dict[str, tuple[Path, ...]]:
    """Map each installed family name to its font files (read from the files themselves)."""
    families: dict[str, list[Path]] = {}
    for package in FONT_PACKAGES:
        try:
            module = importlib.import_module(package)
        except ImportError:
            # A missing font package only narrows the choice; resolve_font names what is left.
            continue
        if module.__file__ is None:
            continue
        folder = Path(module.__file__).resolve().parent / "files"
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.suffix.lower() not in _FONT_SUFFIXES:
                continue
            try:
                family = ImageFont.truetype(str(path)).getname()[0]
            except OSError:
                continue
            if family:
                families.setdefault(family, []).append(path)
    return {name: tuple(paths) for name, paths in sorted(families.items())}


def installed_fonts() -> dict[str, Path]:
    """Return the font families the layout may use, each with the folder holding its files.

    Families come from the font packages (``FONT_PACKAGES``) and are named as the
    font files name themselves (e.g. ``"Source Sans Pro"``). The result is cached.
    """
    return {family: paths[0].parent for family, paths in _font_files().items()}


def resolve_font(family: str) -> str:
    """Return the installed family name matching ``family`` (case and spacing ignored).

    Raises ``LayoutError`` naming the installed families when there is no match:
    Typst itself only warns about an unknown family and falls back to another font.
    """
    wanted = " ".join(family.split()).casefold()
    for name in installed_fonts():
        if name.casefold() == wanted:
            return name
    names = ", ".join(installed_fonts()) or "none (install font-lato, font-roboto, ...)"
    raise LayoutError(f"font {family!r} is not installed; installed fonts: {names}")


@functools.cache
def _coverage(family: str) -> frozenset[int]:
    paths = _font_files()[family]
    # Weights of one family cover the same characters; the regular face stands for them all.
    regular = [p for p in paths if "regular" in p.stem.lower()] or list(paths)
    with TTFont(regular[0], lazy=True) as font:
        return frozenset(font.getBestCmap() or {})


def missing_glyphs(text: str, family: str) -> list[str]:
    """Return the characters of ``text`` that the installed ``family`` cannot draw (in order).

    Spaces, format controls (zero-width joiners) and variation selectors are not
    checked. Typst would print such characters as empty boxes, so callers refuse
    or rewrite the text instead. Raises ``LayoutError`` for an unknown family.
    """
    covered = _coverage(resolve_font(family))
    missing: list[str] = []
    for char in unicodedata.normalize("NFC", text):
        if char.isspace() or unicodedata.category(char) == "Cf":
            continue
        if 0xFE00 <= ord(char) <= 0xFE0F or ord(char) in covered or char in missing:
            continue
        missing.append(char)
    return missing


# --------------------------------------------------------------------------- colour


def _rgb(colour: str) -> tuple[float, float, float]:
    digits = colour.strip().lstrip("#")
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    if len(digits) != 6:
        raise ValueError(f"{colour!r} is not a hex colour such as #1F3A5F")
    red, green, blue = (int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return red, green, blue


def _hex(rgb: np.ndarray | tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(float(c) * 255):02X}" for c in np.clip(rgb, 0, 1))


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of sRGB values in 0..1 (last axis: red, green, blue)."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def relative_luminance(colour: str) -> float:
    """Return the WCAG 2 relative luminance (0 black .. 1 white) of a hex colour.

    Raises ``ValueError`` for a string that is not ``#RGB`` or ``#RRGGBB``.
    """
    return float(_luminance(np.array(_rgb(colour))))


def contrast_ratio(first: str, second: str) -> float:
    """Return the WCAG 2 contrast ratio (1 to 21) between two hex colours.

    Raises ``ValueError`` for a string that is not a hex colour.
    """
    high, low = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _contrast(lum: np.ndarray, other: float) -> np.ndarray:
    return (np.maximum(lum, other) + 0.05) / (np.minimum(lum, other) + 0.05)


def _mix_until(colour: str, toward: str, good: Callable[[str], bool]) -> str:
    """Move ``colour`` toward ``toward`` in small steps until it is ``good``."""
    start, end = np.array(_rgb(colour)), np.array(_rgb(toward))
    for step in range(21):
        candidate = _hex(start + (end - start) * step / 20)
        if good(candidate):
            return candidate
    return toward


def _picture(png: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(png))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidImage(f"the background is not a readable picture ({exc})") from None
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent parts show the page, which the template fills white.
        page = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(page, image.convert("RGBA"))
    return image.convert("RGB")


def _visible_box(size: tuple[int, int], page_aspect: float) -> tuple[float, float, float, float]:
    """The part of a picture that a centred cover fit shows on the page: (left, top, w, h)."""
    width, height = size
    if width / height > page_aspect:
        keep = height * page_aspect
        return (width - keep) / 2, 0.0, keep, float(height)
    keep = width / page_aspect
    return 0.0, (height - keep) / 2, float(width), keep


def _frosted(png: bytes, zone: Zone, page_aspect: float, radius: float) -> bytes:
    """Blur the picture under ``zone`` (frosted glass), so texture never fights the text.

    ``radius`` is the panel's corner radius as a share of the page width. Blurring
    only evens out the pixels the style was measured on, so contrast can only gain.
    """
    image = _picture(png)
    left, top, width, height = _visible_box(image.size, page_aspect)
    box = (
        round(left + zone.x * width),
        round(top + zone.y * height),
        round(left + (zone.x + zone.w) * width),
        round(top + (zone.y + zone.h) * height),
    )
    blurred = image.filter(ImageFilter.GaussianBlur(width * 0.02))
    # Draw the rounded mask four times larger and shrink it for smooth corners.
    mask = Image.new("L", (image.width * 4, image.height * 4), 0)
    corner = max(1, round(radius * width * 4))
    ImageDraw.Draw(mask).rounded_rectangle([c * 4 for c in box], radius=corner, fill=255)
    image.paste(blurred, (0, 0), mask.resize(image.size, Image.Resampling.BOX))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=3)
    return out.getvalue()


def _zone_pixels(png: bytes, zone: Zone, page_aspect: float | None) -> np.ndarray:
    """Return the picture's pixels under ``zone`` as an (N, 3) array of sRGB values in 0..1."""
    image = _picture(png)
    if page_aspect:
        # The template covers the page (fit: "cover", centred): crop the same way.
        left, top, width, height = _visible_box(image.size, page_aspect)
        box = (round(left), round(top), round(left + width), round(top + height))
        image = image.crop(box)
    region = image.crop(zone.pixels(*image.size))
    # Averaging blocks of a few pixels keeps the measure fast; 160 samples across the
    # zone is still finer than the strokes of the smallest text on it.
    scale = min(1.0, 160 / max(region.size))
    size = (max(1, round(region.width * scale)), max(1, round(region.height * scale)))
    region = region.resize(size, Image.Resampling.BOX)
    return np.asarray(region, dtype=np.float64).reshape(-1, 3) / 255


def _worst_contrast(pixels: np.ndarray, panel: str, opacity: float, colour: str) -> float:
    """Contrast of ``colour`` on the worst-case pixel once the panel is laid over the picture."""
    return float(_worst_contrasts(pixels, panel, np.array([opacity]), colour)[0])


def _worst_contrasts(
    pixels: np.ndarray, panel: str, opacities: np.ndarray, colour: str
) -> np.ndarray:
    # PDF viewers and Typst's PNG renderer blend in gamma-encoded sRGB, so do we.
    alpha = opacities[:, None, None]
    composite = alpha * np.array(_rgb(panel)) + (1 - alpha) * pixels[None]
    contrast = _contrast(_luminance(composite), relative_luminance(colour))
    return np.percentile(contrast, 100 - COVERED_SHARE, axis=1)


def _needed_opacity(pixels: np.ndarray, panel: str, text: str) -> float:
    """The lowest 8-bit panel opacity at which ``text`` reaches TEXT_CONTRAST everywhere."""
    # Renderers store opacity in 8 bits, so only k/255 can occur: scan every 8th level,
    # then the levels just below the first that passes. (Should contrast not rise
    # steadily with opacity, this can only err toward a more opaque panel.)
    coarse = np.append(np.arange(0, 256, 8), 255)
    passing = np.nonzero(_worst_contrasts(pixels, panel, coarse / 255, text) >= TEXT_CONTRAST)[0]
    if not passing.size:
        return 1.0
    if passing[0] == 0:
        return 0.0
    fine = np.arange(coarse[passing[0] - 1] + 1, coarse[passing[0]] + 1)
    ok = np.nonzero(_worst_contrasts(pixels, panel, fine / 255, text) >= TEXT_CONTRAST)[0]
    return float(fine[ok[0]] / 255)


def _panel_colours(palette: list[str]) -> tuple[str, str]:
    """Return (dark panel, light panel) derived from the brand palette."""
    by_lightness = sorted(palette, key=relative_luminance)
    # The primary (first) colour is the brand's dark unless another brand colour is darker.
    primary = palette[0]
    dark_base = primary if relative_luminance(primary) <= 0.2 else by_lightness[0]
    light_base = palette[2] if len(palette) > 2 else by_lightness[-1]
    if relative_luminance(light_base) < 0.6:
        light_base = by_lightness[-1]
    dark = _mix_until(dark_base, BLACK, lambda c: contrast_ratio(c, WHITE) >= PANEL_CONTRAST)
    # A light panel is a pale tint, not a saturated mid-tone that merely passes.
    light = _mix_until(
        light_base,
        WHITE,
        lambda c: contrast_ratio(c, INK) >= PANEL_CONTRAST and relative_luminance(c) >= 0.7,
    )
    return dark, light


def _pick_accent(
    pixels: np.ndarray, panel: str, opacity: float, text: str, palette: list[str]
) -> str:
    accent_first = [*palette[1:2], *palette[2:], *palette[:1]]
    for colour in accent_first:
        if colour.upper() == panel.upper():
            continue
        if _worst_contrast(pixels, panel, opacity, colour) >= ACCENT_CONTRAST:
            return colour.upper()
    # No brand colour stands out on this panel: tint a colourful brand accent toward the
    # text colour until it does, keeping its hue (a tinted grey is no accent at all).
    base = np.array(_rgb(accent_first[0]))
    end = np.array(_rgb(text))
    if base.max() - base.min() < 0.25:
        return text
    for step in range(1, 11):
        candidate = _hex(base + (end - base) * step / 10)
        if _worst_contrast(pixels, panel, opacity, candidate) >= ACCENT_CONTRAST:
            return candidate
    return text


def _text_on(fill: str) -> str:
    best = max((WHITE, INK), key=lambda colour: contrast_ratio(colour, fill))
    # Either white or pure black always reaches 4.58:1; near-black may fall just short.
    return best if contrast_ratio(best, fill) >= TEXT_CONTRAST else BLACK


def measure_text_style(
    background_png: bytes,
    zone: Zone,
    palette: list[str],
    *,
    page_aspect: float | None = None,
    min_opacity: float = MIN_PANEL_OPACITY,
) -> TextStyle:
    """Choose the text panel's colours from the picture actually under ``zone``.

    Tries white text on a dark panel (from the brand's darkest colour, normally the
    primary) and near-black text on a light panel (from the brand's light colour),
    and keeps the one that needs the lower opacity for WCAG 4.5:1 on the worst-case
    pixel (98 % of the zone). The opacity is that minimum, but never below
    ``min_opacity``. The accent (fact strip, button) is the first brand colour with
    3:1 on the panel, else the brand accent tinted toward the text colour; the
    button text reaches 4.5:1 on the accent. ``page_aspect`` (width / height) crops
    the picture as the template's full-bleed cover fit does. Raises ``InvalidImage``
    for bytes that are not a picture and ``ValueError`` for an empty palette or a
    colour that is not hex.
    """
    if not palette:
        raise ValueError("the palette needs at least one colour")
    palette = [_hex(_rgb(colour)) for colour in palette]
    pixels = _zone_pixels(background_png, zone, page_aspect)
    dark, light = _panel_colours(palette)
    options = [
        (_needed_opacity(pixels, dark, WHITE), 0, dark, WHITE),
        (_needed_opacity(pixels, light, INK), 1, light, INK),
    ]
    needed, _, panel, text = min(options)
    opacity = max(needed, math.ceil(min_opacity * 255) / 255)
    accent = _pick_accent(pixels, panel, opacity, text, palette)
    contrast = _worst_contrast(pixels, panel, opacity, text)
    return TextStyle(
        text_color=text,
        panel_color=panel,
        # Rounded up, so the page is never more see-through than what was measured.
        panel_opacity=math.ceil(opacity * 10_000) / 10_000,
        accent_color=accent,
        accent_text_color=_text_on(accent),
        # Rounded down so the record never claims more contrast than the page has.
        contrast=math.floor(contrast * 100) / 100,
    )


# --------------------------------------------------------------------------- QR code


def qr_svg(url: str) -> str:
    """Return an SVG QR code for ``url``: black modules on white, 4-module quiet zone.

    Error correction is at least M (segno raises it when that costs no size).
    Raises ``LayoutError`` unless ``url`` is an http(s) link with a host and no spaces.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise LayoutError(f"QR codes are made only for http(s) links, not {url!r}")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url.strip()):
        raise LayoutError(f"the link {url!r} contains spaces or control characters")
    code = segno.make_qr(url.strip(), error="m")
    out = io.BytesIO()
    code.save(out, kind="svg", border=4, dark="#000000", light="#FFFFFF", xmldecl=False)
    return out.getvalue().decode("utf-8")


# --------------------------------------------------------------------------- render


@dataclass(frozen=True)
class TypesetFlyer:
    """One compiled flyer: its files and the font sizes the template settled on (pt)."""

    pdf: bytes | None
    png: bytes
    png_width: int
    png_height: int
    font_sizes: dict[str, float] = field(default_factory=dict)


def type_scale(fmt: FlyerFormat) -> dict[str, float]:
    """Return the template's sizes for ``fmt`` in pt, all relative to the page.

    One unit is 1 % of the page's shorter side, so a letter poster and a square
    post keep the same proportions. Maxima are where fitting starts, minima where
    it gives up.
    """
    unit = min(fmt.width_pt, fmt.height_pt) / 100
    sizes = {
        "unit": 1.0,
        "headline_max": 11.0,
        "headline_min": 4.6,
        "body_max": 2.9,
        "body_min": 1.75,
        "fine_min": 1.4,
        "business_max": 3.3,
        "business_min": 1.8,
        "padding": 5.0,
        "radius": 2.2,
        "qr": 16.0,
    }
    scaled = {name: round(value * unit, 3) for name, value in sizes.items()}
    # Headline-to-body ratios: body text starts at most headline / ratio (so a long
    # headline that had to shrink does not sit on oversized body text), and while the
    # headline is more than ratio_high times the body, only the headline shrinks.
    scaled["ratio"] = 2.6
    scaled["ratio_high"] = 3.1
    scaled["headline_lines"] = 3
    return scaled


def _url_label(url: str) -> str:
    """A short, typeable form of the link to print by the button ('' when too long)."""
    parts = urlsplit(url)
    # hostname drops any user:password@ and the port; a port is put back, credentials never.
    host = (parts.hostname or "").removeprefix("www.")
    try:
        host += f":{parts.port}" if parts.port else ""
    except ValueError:
        return ""
    label = (host + parts.path).rstrip("/")
    if parts.query or parts.fragment:
        return host if len(host) <= 40 else ""
    return label if len(label) <= 40 else (host if len(host) <= 40 else "")


def _check_glyphs(fields: dict[str, tuple[str, str]]) -> None:
    for name, (text, family) in fields.items():
        missing = missing_glyphs(text, family)
        if missing:
            shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in missing[:5])
            raise LayoutError(
                f"the {name} contains {shown}, which the font {family} cannot draw: "
                "remove it or choose another font"
            )


def _png_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as image:
        return image.size


def _expected_pixels(fmt: FlyerFormat, ppi: float) -> tuple[int, int]:
    if fmt.unit == "px":
        return round(fmt.width), round(fmt.height)
    return round(fmt.width_pt * ppi / 72), round(fmt.height_pt * ppi / 72)


def _overflow_message(block: str, fmt: FlyerFormat, scale: dict[str, float]) -> str:
    name = fmt.name
    if block == "headline":
        return (
            f"the headline does not fit the {name} format even at "
            f"{scale['headline_min']:.0f} pt: shorten it or break up its longest word"
        )
    if block == "business":
        return (
            f"the business name does not fit the header of the {name} format even at "
            f"{scale['business_min']:.0f} pt: shorten it"
        )
    return (
        f"the text does not fit the {name} panel even at {scale['headline_min']:.0f} pt "
        f"headline and {scale['body_min']:.0f} pt body: shorten the subhead, body points "
        "or fine print"
    )


def _layout_error(exc: RuntimeError, fmt: FlyerFormat, scale: dict[str, float]) -> LayoutError:
    message = getattr(exc, "message", None) or str(exc)
    marker = "overflow: "
    if marker in message:
        block = message.split(marker, 1)[1].split()[0].strip("\"'.,")
        return LayoutError(_overflow_message(block, fmt, scale))
    hints = getattr(exc, "hints", None) or []
    hint = f" (hint: {hints[0]})" if hints else ""
    first_line = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return LayoutError(f"the {fmt.name} flyer template failed: {first_line}{hint}")


@functools.cache
def _typst_fonts() -> typst.Fonts:
    # Scanning font folders takes a while; one font book serves every render.
    return typst.Fonts(
        include_system_fonts=False,
        include_embedded_fonts=True,
        font_paths=[str(folder) for folder in installed_fonts().values()],
    )


def typeset_flyer(
    *,
    fmt: FlyerFormat,
    copy: FlyerCopy,
    brief: Brief,
    background_png: bytes,
    style: TextStyle,
    heading_font: str,
    body_font: str,
    logo_path: Path | None,
    print_ppi: int,
    template: Path = DEFAULT_TEMPLATE,
) -> TypesetFlyer:
    """Typeset one flyer and return its PDF (when the format has one), PNG and font sizes.

    The PNG is rendered at ``fmt.png_ppi(print_ppi)`` and is exactly the format's
    pixel size (1080x1080 for a square post, 1275x1650 for letter at 150 ppi).
    Raises ``LayoutError`` for text that cannot fit (naming the block), an unknown
    font, a character the fonts cannot draw or a template failure; ``AssetError``
    for a logo file that is missing; ``InvalidImage`` for a background that is not
    a picture.
    """
    heading = resolve_font(heading_font)
    body = resolve_font(body_font)
    facts = [run for run in (copy.when, copy.where, copy.price) if run]
    label = _url_label(brief.url) if brief.url else ""
    body_fields = {
        "business name": brief.business,
        "subhead": copy.subhead,
        "date, place or price": " ".join(facts),
        "body points": " ".join(copy.body_points),
        "call to action": copy.call_to_action,
        "fine print": copy.fine_print,
        "link": label,
    }
    _check_glyphs(
        {"headline": (copy.headline, heading)}
        | {name: (text, body) for name, text in body_fields.items()}
    )
    if logo_path is not None and not logo_path.is_file():
        raise AssetError(f"logo {str(logo_path)!r} does not exist or is not a file")
    qr = qr_svg(brief.url) if brief.url else None
    scale = type_scale(fmt)
    aspect = fmt.width_pt / fmt.height_pt
    # The header chip sits on whatever the picture has there: measure it too, with the
    # text panel's colours, so the business name is as readable as the body.
    header_pixels = _zone_pixels(background_png, fmt.header_zone, aspect)
    header_opacity = max(
        style.panel_opacity,
        _needed_opacity(header_pixels, style.panel_color, style.text_color),
    )
    ppi = fmt.png_ppi(print_ppi)
    with tempfile.TemporaryDirectory(prefix="hyperlocal-typst-") as folder:
        root = Path(folder)
        corner = scale["radius"] / fmt.width_pt
        (root / "bg.png").write_bytes(_frosted(background_png, fmt.text_zone, aspect, corner))
        logo_name = None
        if logo_path is not None:
            logo_name = "logo" + logo_path.suffix.lower()
            shutil.copyfile(logo_path, root / logo_name)
        if qr is not None:
            (root / "qr.svg").write_text(qr, encoding="utf-8")
        data: dict[str, Any] = {
            "page": {"width": fmt.width_pt, "height": fmt.height_pt},
            "sizes": scale,
            "header_zone": fmt.header_zone.model_dump(),
            "text_zone": fmt.text_zone.model_dump(),
            "fonts": {"heading": heading, "body": body},
            "style": {
                "text": style.text_color,
                "panel": style.panel_color,
                "panel_opacity": style.panel_opacity,
                "header_opacity": header_opacity,
                "accent": style.accent_color,
                "accent_text": style.accent_text_color,
            },
            "text": {
                "business": brief.business,
                "headline": copy.headline,
                "subhead": copy.subhead,
                "facts": facts,
                "points": list(copy.body_points),
                "cta": copy.call_to_action,
                "fine_print": copy.fine_print,
                "link": label,
            },
            "files": {
                "background": "/bg.png",
                "logo": f"/{logo_name}" if logo_name else None,
                "qr": "/qr.svg" if qr is not None else None,
            },
        }
        (root / "data.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        shutil.copyfile(template, root / "flyer.typ")
        compiler = typst.Compiler(
            str(root / "flyer.typ"), root=str(root), font_paths=_typst_fonts()
        )
        try:
            pdf = _compile(compiler, "pdf") if "pdf" in fmt.outputs else None
            png = _compile(compiler, "png", ppi)
            fitted = json.loads(compiler.query("<fitted>", field="value"))
        except RuntimeError as exc:  # typst.TypstError, or a plain one from query
            raise _layout_error(exc, fmt, scale) from exc
    width, height = _png_size(png)
    expected = _expected_pixels(fmt, ppi)
    if (width, height) != expected:
        raise LayoutError(
            f"the {fmt.name} PNG came out {width}x{height} px instead of "
            f"{expected[0]}x{expected[1]}: the template's page size is wrong"
        )
    sizes = {name: round(float(value), 2) for found in fitted for name, value in found.items()}
    return TypesetFlyer(pdf=pdf, png=png, png_width=width, png_height=height, font_sizes=sizes)


def _compile(compiler: typst.Compiler, kind: str, ppi: float | None = None) -> bytes:
    result, warnings = compiler.compile_with_warnings(format=kind, ppi=ppi)
    for warning in warnings:
        # Typst only warns about an unknown family and quietly uses another font.
        if "unknown font family" in warning.message:
            raise LayoutError(
                f"the flyer template asks for a font that is missing: {warning.message}"
            )
    if isinstance(result, list):
        if len(result) != 1:
            raise LayoutError(f"the flyer template made {len(result)} pages instead of one")
        result = result[0]
    if not isinstance(result, bytes):
        raise LayoutError(f"Typst returned no {kind} output")
    return result


def render_flyer_files(
    *,
    fmt: FlyerFormat,
    copy: FlyerCopy,
    brief: Brief,
    background_png: bytes,
    style: TextStyle,
    heading_font: str,
    body_font: str,
    logo_path: Path | None,
    print_ppi: int,
    template: Path = DEFAULT_TEMPLATE,
) -> tuple[bytes | None, bytes, int, int]:
    """Typeset one flyer; return ``(pdf or None, png, png_width, png_height)``.

    The same as ``typeset_flyer`` without the font sizes; raises what it raises.
    """
    flyer = typeset_flyer(
        fmt=fmt,
        copy=copy,
        brief=brief,
        background_png=background_png,
        style=style,
        heading_font=heading_font,
        body_font=body_font,
        logo_path=logo_path,
        print_ppi=print_ppi,
        template=template,
    )
    return flyer.pdf, flyer.png, flyer.png_width, flyer.png_height


def template_digest(template: Path = DEFAULT_TEMPLATE) -> str:
    """Return a sha256 of the template and of this module's source, for cache keys.

    A change to either re-runs layout. Raises ``OSError`` when the template is unreadable.
    """
    digest = hashlib.sha256()
    digest.update(Path(template).read_bytes())
    digest.update(b"\0")
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()
