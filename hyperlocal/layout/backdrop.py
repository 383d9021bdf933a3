"""The picture behind the text: measured for the text's colours, frosted under a panel.

``measure_style`` picks text and panel colours from the pixels under the design's
text zone; ``make_backdrop`` gives the header chip an opacity measured the same
way and, for the frosted design, blurs the picture under the text panel. The
picture is decoded once for both.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from hyperlocal.layout.contrast import (
    load_picture,
    measure_text_style,
    needed_opacity,
    pixels_under,
    visible_box,
)
from hyperlocal.layout.designs import MIN_OPACITY, PlacedDesign
from hyperlocal.layout.formats import FlyerFormat, Zone
from hyperlocal.layout.geometry import PageGeometry
from hyperlocal.models import TextStyle

#: The frosted panel's blur (Gaussian sigma) as a share of the visible picture's width.
FROST_BLUR = 0.02


def measure_style(
    background_png: bytes,
    fmt: FlyerFormat,
    placed: PlacedDesign,
    palette: list[str],
    geometry: PageGeometry,
) -> TextStyle:
    """Choose text and panel colours for the design from the picture under its text zone.

    A frosted panel is at least 75 % opaque, a scrim 55 %, a solid panel 100 %
    (``designs.MIN_OPACITY``); each reaches WCAG 4.5:1 on the worst-case pixel.
    Raises ``InvalidImage`` for a background that is not a picture.
    """
    zone, aspect = geometry.in_picture(
        # Over a solid panel the picture does not matter (the panel hides it).
        placed.text_zone if placed.text_on_picture else placed.picture,
        placed.picture,
    )
    return measure_text_style(
        background_png,
        zone,
        palette,
        page_aspect=aspect,
        min_opacity=MIN_OPACITY[placed.treatment],
    )


@dataclass(frozen=True)
class Backdrop:
    """The picture as the template draws it, and the header chip's opacity over it."""

    png: bytes
    header_opacity: float


def make_backdrop(
    background_png: bytes,
    placed: PlacedDesign,
    geometry: PageGeometry,
    style: TextStyle,
    corner_pt: float,
) -> Backdrop:
    """Measure the header chip's opacity and frost the picture under a frosted text panel.

    The header chip sits on whatever the picture has there, so it gets the text
    panel's colours at the opacity that makes the business name as readable as
    the body (never under the frosted panel's floor). ``corner_pt`` is the
    panel's corner radius. Other designs keep ``background_png`` as it is.
    Raises ``InvalidImage`` for a background that is not a picture.
    """
    picture = load_picture(background_png)
    header_zone, aspect = geometry.in_picture(placed.header_zone, placed.picture)
    header = max(
        MIN_OPACITY["frosted"],
        needed_opacity(
            pixels_under(picture, header_zone, aspect), style.panel_color, style.text_color
        ),
    )
    if placed.treatment != "frosted":
        return Backdrop(png=background_png, header_opacity=header)
    text_zone, _ = geometry.in_picture(placed.text_zone, placed.picture)
    corner = corner_pt / geometry.picture_rect(placed.picture)[2]
    frost(picture, text_zone, aspect, corner)
    return Backdrop(png=stored_png(picture), header_opacity=header)


def stored_png(picture: Image.Image) -> bytes:
    """Return an RGB picture as a PNG without filters or compression: fast to write and read.

    The frosted picture only goes to Typst, which decodes it and compresses it its
    own way into the PDF, so squeezing it is wasted work: Pillow's PNG encoder picks
    a filter for every row, which takes longer than frosting the picture (25 ms
    against 2 ms for a letter flyer's picture). The pixels are the same.
    """
    rgb = picture if picture.mode == "RGB" else picture.convert("RGB")
    width, height = rgb.size
    # Each row starts with its filter type; 0 is "none".
    rows = np.zeros((height, 1 + width * 3), dtype=np.uint8)
    rows[:, 1:] = np.asarray(rgb).reshape(height, width * 3)

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, not interlaced
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(rows.tobytes(), level=0)),
            chunk(b"IEND", b""),
        )
    )


def frost(picture: Image.Image, zone: Zone, page_aspect: float, radius: float) -> None:
    """Blur ``picture`` under ``zone`` (frosted glass, rounded corners), in place.

    ``zone`` is in fractions of the part a cover fit at ``page_aspect`` shows;
    ``radius`` is the corner radius as a share of that part's width. Blurring
    only evens out the pixels the style was measured on, so contrast can only gain.
    """
    left, top, width, height = visible_box(picture.size, page_aspect)
    box = (
        round(left + zone.x * width),
        round(top + zone.y * height),
        round(left + (zone.x + zone.w) * width),
        round(top + (zone.y + zone.h) * height),
    )
    sigma = width * FROST_BLUR
    # Pillow's Gaussian blur is three box blurs of about sigma each, so no pixel further
    # than 3 * (sigma + 1) away reaches the zone: blurring a crop with that margin gives
    # the zone the same pixels as blurring the whole picture, for a fraction of the work.
    margin = 3 * (math.ceil(sigma) + 2)
    source = (
        max(0, box[0] - margin),
        max(0, box[1] - margin),
        min(picture.width, box[2] + margin),
        min(picture.height, box[3] + margin),
    )
    # Blurring each band on its own gives the same pixels about a tenth faster: Pillow keeps an
    # RGB picture four bytes a pixel and would blur the unused fourth too.
    bands = picture.crop(source).split()
    blurred = Image.merge("RGB", [band.filter(ImageFilter.GaussianBlur(sigma)) for band in bands])
    # Only the zone and a pixel around it can be non-zero in the mask.
    x0, y0 = max(0, box[0] - 1), max(0, box[1] - 1)
    x1, y1 = min(picture.width, box[2] + 1), min(picture.height, box[3] + 1)
    mask = panel_mask(box[2] - box[0], box[3] - box[1], max(1, round(radius * width * 4)))
    mask = mask.crop((x0 - box[0] + 1, y0 - box[1] + 1, x1 - box[0] + 1, y1 - box[1] + 1))
    patch = blurred.crop((x0 - source[0], y0 - source[1], x1 - source[0], y1 - source[1]))
    picture.paste(patch, (x0, y0), mask)


def panel_mask(width: int, height: int, corner: int) -> Image.Image:
    """Return the frosted panel's mask: a ``width`` x ``height`` rounded rectangle, one
    empty pixel around it, its corners smoothed by drawing four times larger and shrinking.

    ``corner`` is the radius at four times the size. Only the corners need drawing:
    away from them every row (and column) is the same, so a panel just large enough
    for its corners is drawn and its middle row and column are repeated, which gives
    the pixels of drawing the whole panel large for a tenth of the work.
    """
    # Pixels from an edge that a corner (and the shrinking) can reach, with room to spare.
    reach = corner // 4 + 3
    small_width, small_height = min(width, 2 * reach), min(height, 2 * reach)
    large = Image.new("L", ((small_width + 2) * 4, (small_height + 2) * 4), 0)
    ImageDraw.Draw(large).rounded_rectangle(
        [4, 4, (small_width + 1) * 4, (small_height + 1) * 4], radius=corner, fill=255
    )
    shrunk = np.asarray(large.resize((small_width + 2, small_height + 2), Image.Resampling.BOX))
    stretched = _repeat_middle(
        _repeat_middle(shrunk, 1, width + 2, reach + 1), 0, height + 2, reach + 1
    )
    return Image.fromarray(stretched)


def _repeat_middle(pixels: np.ndarray, axis: int, size: int, middle: int) -> np.ndarray:
    """Return ``pixels`` grown to ``size`` along ``axis`` by repeating index ``middle``."""
    extra = size - pixels.shape[axis]
    if extra <= 0:
        return pixels
    before, line, after = np.split(pixels, [middle, middle + 1], axis=axis)
    return np.concatenate((before, np.repeat(line, extra + 1, axis=axis), after), axis=axis)
