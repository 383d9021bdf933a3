"""Every format in every design, checked on what the user gets: files, boxes, QR, contrast.

The flyers are the example brief (``examples/briefs/bakery.toml``) written by the
builtin copywriter over a picture from the builtin painter, typeset by the real
Typst template. Checks read the results back: page boxes with pypdf, the QR code
with zxing-cpp, colours from the rendered PNG pixels. Each render is made once
(``functools.cache``) and print formats render at 72 ppi, so the file stays fast.
"""

from __future__ import annotations

import functools
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zxingcpp
from PIL import Image
from pypdf import PageObject, PdfReader
from pypdf.generic import ContentStream, RectangleObject

from backends.base import ArtRequest, CopyRequest, ImageRequest
from backends.builtin_image import BuiltinPainter
from backends.builtin_text import BuiltinCopywriter
from hyperlocal.briefs.loading import load_brief, validate_brief
from hyperlocal.errors import BriefError, LayoutError, TextOverflow
from hyperlocal.layout.backdrop import measure_style
from hyperlocal.layout.contrast import TEXT_CONTRAST, relative_luminance
from hyperlocal.layout.designs import DESIGNS, PlacedDesign, design_for_variant, place_design
from hyperlocal.layout.formats import FORMATS, FlyerFormat, Zone, sdxl_size_for
from hyperlocal.layout.geometry import PageGeometry
from hyperlocal.layout.job import TypesetRequest
from hyperlocal.layout.typesetting import TypesetFlyer, typeset_flyer
from hyperlocal.models import Brief, FlyerCopy, TextStyle
from hyperlocal.prompts.clip_tokens import clip_counter
from hyperlocal.prompts.fitting import fit_image_prompt
from hyperlocal.settings import LayoutSettings

EXAMPLE_BRIEF = Path(__file__).resolve().parent.parent / "examples" / "briefs" / "bakery.toml"
PPI = 72
PRINT = [name for name, fmt in FORMATS.items() if fmt.medium == "print"]
COMBOS = [(name, design) for name in FORMATS for design in DESIGNS]
#: Bleed in pt from the print standards: 1/8 in for US sizes, 3 mm for ISO (A4).
BLEED_PT = {"letter": 9.0, "half_letter": 9.0, "a4": 3 * 72 / 25.4}
#: Trim in pt: US letter and half letter by the inch, A4 as 210 x 297 mm.
TRIM_PT = {"letter": (612.0, 792.0), "half_letter": (396.0, 612.0), "a4": (595.28, 841.89)}
#: Least distance of text from the trim: 1/4 in (letter), 6 mm (A4), 3/16 in (half letter).
SAFE_PT = {"letter": 18.0, "a4": 6 * 72 / 25.4, "half_letter": 13.5}
#: Story bands that Instagram-style apps draw over: profile bar on top, reply bar below.
STORY_TOP_PX, STORY_BOTTOM_PX = 250, 340

# --------------------------------------------------------------------------- the example


@dataclass(frozen=True)
class Example:
    brief: Brief
    copy: FlyerCopy


@dataclass(frozen=True)
class Scene:
    """One format and design with its painted background."""

    fmt: FlyerFormat
    placed: PlacedDesign
    background: bytes


@functools.cache
def example() -> Example:
    brief = load_brief(EXAMPLE_BRIEF)
    copy = BuiltinCopywriter().write_copy(CopyRequest(brief=brief, variant=1, variants=3))
    return Example(brief=brief, copy=copy)


def busy_png(width: int, height: int) -> bytes:
    """A picture no text survives unaided: random blocks of white, black and brand orange."""
    rng = np.random.default_rng(7)
    colours = np.array([[255, 255, 255], [0, 0, 0], [232, 163, 61]], dtype=np.uint8)
    blocks = colours[rng.integers(0, 3, size=(height // 16 + 1, width // 16 + 1))]
    pixels = blocks.repeat(16, axis=0).repeat(16, axis=1)[:height, :width]
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@functools.cache
def scene(format_name: str, design: str, picture: str = "painted") -> Scene:
    """Paint the background the way the flow does: sized to the picture zone, calm zone kept.

    ``picture="busy"`` swaps in ``busy_png`` of the same size instead.
    """
    fmt = FORMATS[format_name]
    placed = place_design(fmt, design)
    width, height = sdxl_size_for(placed.picture_aspect(fmt), 0.4)
    if picture == "busy":
        return Scene(fmt=fmt, placed=placed, background=busy_png(width, height))
    brief, copy = example().brief, example().copy
    painter = BuiltinPainter()
    art = BuiltinCopywriter().direct_art(ArtRequest(brief=brief, copy=copy, variant=1))
    prompt = fit_image_prompt(
        art,
        syntax=painter.prompt_syntax,
        counters=[clip_counter()],
        zone=placed.calm_zone.describe(),
    )
    image = painter.generate(
        ImageRequest(
            prompt=prompt,
            width=width,
            height=height,
            seed=3,
            attempt=1,
            steps=1,
            cfg_scale=0,
            palette=list(brief.brand.colors),
            text_zone=placed.calm_zone,
        )
    )
    return Scene(fmt=fmt, placed=placed, background=image.png)


def style_for(
    format_name: str, design: str, bleed: bool = False, picture: str = "painted"
) -> TextStyle:
    s = scene(format_name, design, picture)
    geometry = PageGeometry.for_format(s.fmt, bleed, bleed)
    return measure_style(
        s.background, s.fmt, s.placed, list(example().brief.brand.colors), geometry
    )


def render(
    format_name: str,
    design: str,
    *,
    brief: Brief | None = None,
    copy: FlyerCopy | None = None,
    style: TextStyle | None = None,
    bleed: bool = False,
    crop_marks: bool = False,
    ppi: int = PPI,
    picture: str = "painted",
) -> TypesetFlyer:
    s = scene(format_name, design, picture)
    brief = brief or example().brief
    return typeset_flyer(
        TypesetRequest(
            fmt=s.fmt,
            copy=copy or example().copy,
            brief=brief,
            background_png=s.background,
            style=style or style_for(format_name, design, bleed or crop_marks, picture),
            heading_font="Fjalla One",
            body_font="Source Sans Pro",
            logo_path=brief.brand.logo,
            print_ppi=ppi,
            design=s.placed,
            bleed=bleed,
            crop_marks=crop_marks,
        )
    )


@functools.cache
def flyer(format_name: str, design: str, bleed: bool = False, marks: bool = False) -> TypesetFlyer:
    """The example flyer, rendered once per module."""
    return render(format_name, design, bleed=bleed, crop_marks=marks)


def _inverse(colour: str) -> str:
    return "#" + "".join(f"{255 - int(colour[i : i + 2], 16):02X}" for i in (1, 3, 5))


@dataclass(frozen=True)
class InkPair:
    """The flyer (without a link, so no QR code) rendered in its colours and in inverted inks.

    Text, accent rule, fact strip and button are drawn in the style's text and accent
    colours; the backdrop (picture, frosted blur, scrim, panel, header chip, logo) is
    not. Rendering twice with every ink colour inverted leaves backdrop pixels
    unchanged and changes every pixel a glyph or accent touches, so ``ink`` marks
    exactly what was drawn with the inks, measured on the real render.
    """

    style: TextStyle
    pixels: np.ndarray  # (H, W, 3) ints: the flyer as rendered
    ink: np.ndarray  # (H, W) bools: pixels drawn with the text or accent colours


def ink_render(
    format_name: str,
    design: str,
    *,
    brief: Brief,
    copy: FlyerCopy | None = None,
    picture: str = "painted",
) -> InkPair:
    """Render twice, the second time with every ink inverted; see ``InkPair``."""
    style = style_for(format_name, design, picture=picture)
    inverted = style.model_copy(
        update={
            name: _inverse(getattr(style, name))
            for name in ("text_color", "accent_color", "accent_text_color")
        }
    )
    kwargs: dict[str, Any] = {"brief": brief, "copy": copy, "picture": picture}
    normal = png_pixels(render(format_name, design, style=style, **kwargs).png)
    other = png_pixels(render(format_name, design, style=inverted, **kwargs).png)
    return InkPair(style=style, pixels=normal, ink=np.abs(normal - other).max(axis=2) > 2)


@functools.cache
def ink_pair(format_name: str, design: str, picture: str = "painted") -> InkPair:
    """The example flyer without its link (no QR code), with its ink mask."""
    no_link = example().brief.model_copy(update={"url": None})
    return ink_render(format_name, design, brief=no_link, picture=picture)


# --------------------------------------------------------------------------- helpers


def png_pixels(png: bytes) -> np.ndarray:
    # int16: differences can go negative, and cached renders stay small.
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def pdf_page(pdf: bytes | None) -> PageObject:
    assert pdf is not None
    pages = PdfReader(io.BytesIO(pdf)).pages
    assert len(pages) == 1
    return pages[0]


def box(rect: RectangleObject) -> tuple[float, float, float, float]:
    left, bottom, right, top = (float(v) for v in rect)
    return left, bottom, right, top


def size(rect: RectangleObject) -> tuple[float, float]:
    left, bottom, right, top = box(rect)
    return right - left, top - bottom


def pdf_text(pdf: bytes | None) -> str:
    return pdf_page(pdf).extract_text()


def squashed(text: str) -> str:
    """The text without whitespace, so line breaks and word spacing do not matter."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFC", text))


def qr_texts(png: bytes) -> list[str]:
    return [code.text for code in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def wcag_contrast(pixels: np.ndarray, colour: str) -> np.ndarray:
    """WCAG 2 contrast of ``colour`` against each sRGB pixel (0..255), computed here."""
    channels = pixels / 255.0
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    lum = linear @ np.array([0.2126, 0.7152, 0.0722])
    other = relative_luminance(colour)
    return (np.maximum(lum, other) + 0.05) / (np.minimum(lum, other) + 0.05)


def zone_box(zone: Zone, width: int, height: int) -> tuple[int, int, int, int]:
    """The zone in pixels, shrunk by 2 px so anti-aliased panel edges stay out."""
    left, top, right, bottom = zone.pixels(width, height)
    return left + 2, top + 2, right - 2, bottom - 2


def rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)


def picture_extent(page: PageObject) -> tuple[float, float, float, float]:
    """Where the largest image on the PDF page shows: its placed box cut by its clip path.

    Follows the content stream's q/Q, cm and clipping paths (bounding boxes of the
    path points), through form XObjects; returns (left, bottom, right, top) in pt.
    """
    found: list[tuple[float, tuple[float, float, float, float]]] = []

    def apply(m: tuple[float, ...], x: float, y: float) -> tuple[float, float]:
        return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]

    def concat(m: tuple[float, ...], ctm: tuple[float, ...]) -> tuple[float, ...]:
        a, b, c, d, e, f = m
        aa, bb, cc, dd, ee, ff = ctm
        return (
            a * aa + b * cc,
            a * bb + b * dd,
            c * aa + d * cc,
            c * bb + d * dd,
            e * aa + f * cc + ee,
            e * bb + f * dd + ff,
        )

    def bbox(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        return min(xs), min(ys), max(xs), max(ys)

    def cut(a: tuple[float, ...], b: tuple[float, ...] | None) -> tuple[float, ...]:
        if b is None:
            return a
        return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])

    def walk(
        stream: ContentStream,
        resources: Any,
        ctm: tuple[float, ...],
        clip: tuple[float, ...] | None,
    ) -> None:
        saved: list[tuple[tuple[float, ...], tuple[float, ...] | None]] = []
        path: list[tuple[float, float]] = []
        for operands, op in stream.operations:
            if op == b"q":
                saved.append((ctm, clip))
            elif op == b"Q":
                ctm, clip = saved.pop()
            elif op == b"cm":
                ctm = concat(tuple(float(v) for v in operands), ctm)
            elif op in (b"m", b"l"):
                path.append(apply(ctm, float(operands[0]), float(operands[1])))
            elif op == b"c":
                path.append(apply(ctm, float(operands[4]), float(operands[5])))
            elif op == b"re":
                x, y, w, h = (float(v) for v in operands)
                path += [apply(ctm, x, y), apply(ctm, x + w, y + h)]
            elif op in (b"W", b"W*"):
                clip = cut(bbox(path), clip)
            elif op in (b"n", b"f", b"f*", b"F", b"S", b"s", b"B", b"B*", b"b", b"b*"):
                path = []
            elif op == b"Do":
                xobject = resources["/XObject"][operands[0]].get_object()
                if xobject["/Subtype"] == "/Image":
                    shown = cut(bbox([apply(ctm, x, y) for x in (0, 1) for y in (0, 1)]), clip)
                    area = float(xobject["/Width"]) * float(xobject["/Height"])
                    found.append((area, shown))  # type: ignore[arg-type]
                elif xobject["/Subtype"] == "/Form":
                    matrix = tuple(float(v) for v in xobject.get("/Matrix", [1, 0, 0, 1, 0, 0]))
                    walk(
                        ContentStream(xobject, None),
                        xobject.get("/Resources", resources),
                        concat(matrix, ctm),
                        clip,
                    )

    walk(ContentStream(page.get_contents(), page.pdf), page["/Resources"], (1, 0, 0, 1, 0, 0), None)
    assert found, "no image on the page"
    return max(found)[1]  # type: ignore[return-value]


# --------------------------------------------------------------------------- 1. files


def expected_pixels(fmt: FlyerFormat) -> tuple[int, int]:
    if fmt.medium == "screen":
        return round(fmt.width), round(fmt.height)
    return round(fmt.width_pt * PPI / 72), round(fmt.height_pt * PPI / 72)


@pytest.mark.parametrize(("format_name", "design"), COMBOS)
def test_every_format_and_design_gives_a_png_of_the_exact_trim_size(
    format_name: str, design: str
) -> None:
    fmt = FORMATS[format_name]
    result = flyer(format_name, design)
    expected = expected_pixels(fmt)
    assert Image.open(io.BytesIO(result.png)).size == expected
    assert (result.png_width, result.png_height) == expected
    if fmt.medium == "screen":
        assert result.pdf is None
    else:
        page = pdf_page(result.pdf)  # exactly one page
        assert size(page.mediabox) == pytest.approx(TRIM_PT[format_name], abs=0.01)


def test_print_pngs_are_the_trim_at_the_asked_resolution() -> None:
    # 8.5 x 11 in at 150 ppi is 1275 x 1650 px; at 72 ppi, one pixel per point.
    assert (flyer("letter", "split").png_width, flyer("letter", "split").png_height) == (612, 792)
    assert (flyer("a4", "split").png_width, flyer("a4", "split").png_height) == (595, 842)
    sharp = render("half_letter", "split", ppi=150)
    assert Image.open(io.BytesIO(sharp.png)).size == (round(5.5 * 150), round(8.5 * 150))


# --------------------------------------------------------------------------- 2. PDF boxes


@pytest.mark.parametrize("format_name", PRINT)
def test_without_bleed_trim_bleed_and_media_box_are_the_format(format_name: str) -> None:
    page = pdf_page(flyer(format_name, "frosted").pdf)
    trim = (0.0, 0.0, *TRIM_PT[format_name])
    assert box(page.mediabox) == pytest.approx(trim, abs=0.01)
    assert box(page.trimbox) == pytest.approx(trim, abs=0.01)
    assert box(page.bleedbox) == pytest.approx(trim, abs=0.01)


@pytest.mark.parametrize("format_name", PRINT)
def test_with_bleed_the_trim_is_the_format_and_the_bleed_box_adds_the_bleed(
    format_name: str,
) -> None:
    page = pdf_page(flyer(format_name, "frosted", bleed=True).pdf)
    width, height = TRIM_PT[format_name]
    bleed = BLEED_PT[format_name]
    assert size(page.trimbox) == pytest.approx((width, height), abs=0.01)
    assert size(page.bleedbox) == pytest.approx((width + 2 * bleed, height + 2 * bleed), abs=0.01)
    assert box(page.mediabox) == pytest.approx(box(page.bleedbox), abs=0.01)
    # The trim sits centred in the bleed box: the bleed on every side.
    trim, bleed_box = box(page.trimbox), box(page.bleedbox)
    assert trim[0] - bleed_box[0] == pytest.approx(bleed, abs=0.01)
    assert trim[1] - bleed_box[1] == pytest.approx(bleed, abs=0.01)
    assert bleed_box[2] - trim[2] == pytest.approx(bleed, abs=0.01)
    assert bleed_box[3] - trim[3] == pytest.approx(bleed, abs=0.01)


@pytest.mark.parametrize("format_name", PRINT)
def test_crop_marks_add_a_slug_outside_the_bleed_and_keep_the_png_at_trim_size(
    format_name: str,
) -> None:
    result = flyer(format_name, "frosted", bleed=True, marks=True)
    page = pdf_page(result.pdf)
    width, height = TRIM_PT[format_name]
    bleed = BLEED_PT[format_name]
    assert size(page.trimbox) == pytest.approx((width, height), abs=0.01)
    assert size(page.bleedbox) == pytest.approx((width + 2 * bleed, height + 2 * bleed), abs=0.01)
    media, bleed_box = box(page.mediabox), box(page.bleedbox)
    assert media[0] < bleed_box[0] - 1
    assert media[1] < bleed_box[1] - 1
    assert media[2] > bleed_box[2] + 1
    assert media[3] > bleed_box[3] + 1
    assert Image.open(io.BytesIO(result.png)).size == expected_pixels(FORMATS[format_name])
    # The PNG is cut at the trim: no marks, no slug, the same as the bleed-only render's.
    bleed_only = png_pixels(flyer(format_name, "frosted", bleed=True).png)
    assert np.abs(png_pixels(result.png) - bleed_only).max() <= 2


@pytest.mark.parametrize("format_name", PRINT)
def test_the_picture_fills_the_bleed_box_and_stops_there(format_name: str) -> None:
    for marks in (False, True):
        page = pdf_page(flyer(format_name, "frosted", bleed=True, marks=marks).pdf)
        assert picture_extent(page) == pytest.approx(box(page.bleedbox), abs=0.5)
    # Without bleed the picture simply fills the page.
    page = pdf_page(flyer(format_name, "frosted").pdf)
    assert picture_extent(page) == pytest.approx(box(page.mediabox), abs=0.5)


def test_a_split_picture_bleeds_off_the_top_and_sides_but_not_into_the_panel() -> None:
    page = pdf_page(flyer("letter", "split", bleed=True).pdf)
    left, bottom, right, top = picture_extent(page)
    bleed_box = box(page.bleedbox)
    assert (left, right, top) == pytest.approx((bleed_box[0], bleed_box[2], bleed_box[3]), abs=0.5)
    # The picture ends at the cut, 44 % down the trim; the panel takes the rest.
    cut = box(page.trimbox)[3] - place_design(FORMATS["letter"], "split").picture.h * 792
    assert bottom == pytest.approx(cut, abs=0.5)


# --------------------------------------------------------------------------- 3. QR code


@pytest.mark.parametrize("format_name", list(FORMATS))
def test_the_qr_code_scans_back_to_the_briefs_link(format_name: str) -> None:
    url = example().brief.url
    assert url == "https://rosies-bakery.example/sourdough"
    for design in DESIGNS:
        assert qr_texts(flyer(format_name, design).png) == [url], design


def test_a_flyer_without_a_link_has_no_qr_code() -> None:
    no_link = example().brief.model_copy(update={"url": None})
    assert qr_texts(render("square", "frosted", brief=no_link).png) == []


@pytest.mark.parametrize(
    "url", ["ftp://rosies-bakery.example/menu", "javascript:alert(1)", "rosies-bakery.example"]
)
def test_a_brief_with_a_link_that_is_not_http_is_refused_in_one_line(url: str) -> None:
    data = example().brief.model_dump(exclude={"brand"}) | {"url": url}
    with pytest.raises(BriefError) as caught:
        validate_brief(data, "brief.toml")
    message = str(caught.value)
    assert "url" in message
    assert "http" in message
    assert "\n" not in message


# --------------------------------------------------------------------------- 4. contrast
#
# Two independent measures, neither trusting the style's recorded contrast:
#
# - On the rendered PNG: ``ink_pair`` renders the flyer twice, once with every ink
#   (text, accent, button) inverted. Pixels that do not change are the backdrop the
#   reader sees behind the words (picture, blur, scrim, panel), exactly as Typst drew
#   it. The text colour must reach 4.5:1 against the worst 2 % of them in the zone.
# - From the picture alone: the background is cover-fitted to the page in numpy, the
#   text zone cut out and the panel colour laid over it at the panel opacity (sRGB
#   blending, as PDF viewers and Typst do); the same 4.5:1 must hold. Its mean colour
#   must match the rendered backdrop's, which shows the template really lays the panel
#   at that opacity (for split: a solid panel in exactly the panel colour).


def composite_backdrop(
    format_name: str, design: str, style: TextStyle, picture: str = "painted"
) -> np.ndarray:
    """The backdrop under the text zone built in numpy from the picture: (N, 3) in 0..255."""
    s = scene(format_name, design, picture)
    width, height = expected_pixels(s.fmt)
    left, top, right, bottom = zone_box(s.placed.text_zone, width, height)
    if s.placed.treatment == "solid":
        # The split panel lies below the picture: the panel colour alone is the backdrop.
        assert s.placed.text_zone.y >= s.placed.picture.y + s.placed.picture.h
        return np.tile(rgb(style.panel_color), ((right - left) * (bottom - top), 1))
    assert s.placed.picture == Zone(x=0, y=0, w=1, h=1)
    image = Image.open(io.BytesIO(s.background)).convert("RGB")
    # Cover fit, centred: scale the picture to cover the page, crop the overflow.
    scale = max(width / image.width, height / image.height)
    covered = image.resize(
        (round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR
    )
    dx, dy = (covered.width - width) // 2, (covered.height - height) // 2
    under = np.asarray(covered, dtype=float)[dy + top : dy + bottom, dx + left : dx + right]
    # The frosted panel also blurs the picture under it; unblurred is the harder case.
    alpha = style.panel_opacity
    return (alpha * rgb(style.panel_color) + (1 - alpha) * under).reshape(-1, 3)


def rendered_backdrop(format_name: str, design: str, picture: str) -> np.ndarray:
    """The rendered pixels in the text zone that no ink touched: (N, 3) in 0..255."""
    pair = ink_pair(format_name, design, picture)
    fmt = FORMATS[format_name]
    left, top, right, bottom = zone_box(place_design(fmt, design).text_zone, *expected_pixels(fmt))
    return pair.pixels[top:bottom, left:right][~pair.ink[top:bottom, left:right]]


# The example's painted picture keeps its text zone calm; the busy one (black, white and
# orange blocks) needs a near-opaque panel, so a panel or scrim laid too thin shows up.
CONTRAST_CASES = [
    pytest.param(name, design, picture, id=f"{name}-{design}-{picture}")
    for picture, names in (("painted", ("letter", "square")), ("busy", ("letter",)))
    for name in names
    for design in DESIGNS
]


@pytest.mark.parametrize(("format_name", "design", "picture"), CONTRAST_CASES)
def test_text_reaches_wcag_aa_on_the_rendered_backdrop(
    format_name: str, design: str, picture: str
) -> None:
    pair = ink_pair(format_name, design, picture)
    fmt = FORMATS[format_name]
    left, top, right, bottom = zone_box(place_design(fmt, design).text_zone, *expected_pixels(fmt))
    # The words are really there (a blank zone would pass trivially) ...
    assert 0.03 < pair.ink[top:bottom, left:right].mean() < 0.5
    # ... and readable on the worst 2 % of what is behind them.
    backdrop = rendered_backdrop(format_name, design, picture)
    worst = float(np.percentile(wcag_contrast(backdrop, pair.style.text_color), 2))
    assert worst >= TEXT_CONTRAST, f"{worst:.2f}:1 on the rendered {format_name} {design}"


@pytest.mark.parametrize(("format_name", "design", "picture"), CONTRAST_CASES)
def test_text_reaches_wcag_aa_on_the_picture_under_the_panel_composited_independently(
    format_name: str, design: str, picture: str
) -> None:
    style = style_for(format_name, design, picture=picture)
    composite = composite_backdrop(format_name, design, style, picture)
    worst = float(np.percentile(wcag_contrast(composite, style.text_color), 2))
    assert worst >= TEXT_CONTRAST, f"{worst:.2f}:1 composited for {format_name} {design}"
    # The render lays the same panel: the backdrop's mean colour matches the composite.
    rendered = rendered_backdrop(format_name, design, picture)
    assert rendered.mean(axis=0) == pytest.approx(composite.mean(axis=0), abs=4)


@pytest.mark.parametrize("format_name", ["letter", "square"])
def test_the_split_panel_behind_the_text_is_the_solid_panel_colour(format_name: str) -> None:
    style = style_for(format_name, "split")
    fmt = FORMATS[format_name]
    pixels = png_pixels(flyer(format_name, "split").png)
    left, top, right, bottom = zone_box(place_design(fmt, "split").text_zone, *expected_pixels(fmt))
    colours, counts = np.unique(
        pixels[top:bottom, left:right].reshape(-1, 3), axis=0, return_counts=True
    )
    assert style.panel_opacity == 1.0
    assert np.abs(colours[counts.argmax()] - rgb(style.panel_color)).max() <= 2
    assert counts.max() / counts.sum() > 0.5


# --------------------------------------------------------------------------- 5. hostile text

SPECIALS = "# $ @ * _ \\ ` < > [ ] { } = + - / ~ \" '"


def test_typst_and_markdown_characters_print_literally_and_nothing_runs() -> None:
    reads = '#read("/etc/passwd")'
    brief = example().brief.model_copy(update={"business": "Zoë's Façade Bakery #1 [Łódź]"})
    copy = example().copy.model_copy(
        update={
            "headline": "Zoë's #1 façade: *not* _bold_ [sic]",
            "subhead": f"{SPECIALS} {reads}",
            "body_points": ["**Markdown** _stays_ `code` [link](https://x.example)", "Łódź"],
            "fine_print": '#let x = 1 #x $x^2$ @label <b>tag</b> #include "/data.json"',
        }
    )
    result = render("letter", "frosted", brief=brief, copy=copy)
    text = squashed(pdf_text(result.pdf))
    for run in (brief.business, copy.headline, copy.subhead, *copy.body_points, copy.fine_print):
        assert squashed(run) in text, run
    assert "root:" not in text  # /etc/passwd was not read
    assert "headline_max" not in text  # nor the job's own data file


def test_an_emoji_in_the_headline_is_refused_naming_the_character() -> None:
    copy = example().copy.model_copy(update={"headline": "Sourdough 🥖 for Beginners"})
    with pytest.raises(LayoutError) as caught:
        render("square", "split", copy=copy)
    message = str(caught.value)
    assert "🥖" in message or "U+1F956" in message
    assert "headline" in message
    assert "\n" not in message


def test_a_letter_the_headline_font_lacks_sets_the_headline_in_the_body_font() -> None:
    # Fjalla One has no "ź": the headline "Łódź" is set whole in Source Sans Pro.
    copy = example().copy.model_copy(update={"headline": "Sourdough in Łódź"})
    flyer = render("square", "frosted", copy=copy)
    assert flyer.font_fallbacks == ["headline: Fjalla One cannot draw 'ź'; set in Source Sans Pro"]


def test_a_200_character_business_name_is_refused_by_the_brief_in_one_line() -> None:
    data = example().brief.model_dump(exclude={"brand"}) | {"business": "Rosie " * 33 + "Co"}
    assert len(data["business"]) == 200
    with pytest.raises(BriefError) as caught:
        validate_brief(data, "brief.toml")
    assert "business" in str(caught.value)
    assert "\n" not in str(caught.value)


def outcome(format_name: str, **changes: Any) -> TypesetFlyer | LayoutError:
    """The frosted flyer with ``changes``, or the LayoutError it was refused with."""
    try:
        return render(format_name, "frosted", **changes)
    except LayoutError as exc:
        return exc


@pytest.mark.parametrize("length", [80, 200])
def test_a_very_long_business_name_fits_its_header_or_is_refused_in_one_line(length: int) -> None:
    # 80 is the longest a brief allows; 200 reaches the typesetter only by bypassing it.
    name = ("Rosie's Neighbourhood Bakery " * 8)[:length].strip()
    brief = example().brief.model_copy(update={"business": name, "url": None})
    result = outcome("letter", brief=brief)
    if isinstance(result, LayoutError):
        assert isinstance(result, TextOverflow)
        assert result.block == "business"
        assert "business name does not fit" in str(result)
        assert "\n" not in str(result)
        return
    assert squashed(name) in squashed(pdf_text(result.pdf))
    # Every glyph of the header lies inside the header zone on the rendered page.
    placed = place_design(FORMATS["letter"], "frosted")
    ink = ink_render("letter", "frosted", brief=brief).ink
    left, top, right, bottom = placed.header_zone.pixels(612, 792)
    above_panel = ink[: placed.text_zone.pixels(612, 792)[1]]
    rows, cols = np.nonzero(above_panel)
    assert rows.size
    assert top - 1 <= rows.min()
    assert rows.max() <= bottom
    assert left - 1 <= cols.min()
    assert cols.max() <= right


def test_a_200_character_headline_is_refused_or_fits_in_the_page() -> None:
    headline = ("Fresh sourdough every Saturday morning " * 6)[:200].strip()
    with pytest.raises(ValueError, match="headline"):
        FlyerCopy.model_validate(example().copy.model_dump() | {"headline": headline})
    copy = example().copy.model_copy(update={"headline": headline})
    result = outcome("letter", copy=copy)
    if isinstance(result, LayoutError):
        assert "headline" in str(result)
        assert "\n" not in str(result)
    else:
        assert squashed(headline) in squashed(pdf_text(result.pdf))
        assert Image.open(io.BytesIO(result.png)).size == (612, 792)


# --------------------------------------------------------------------------- 6. safe areas


def inside(zone: Zone, outer: Zone) -> bool:
    eps = 1e-9
    return (
        zone.x >= outer.x - eps
        and zone.y >= outer.y - eps
        and zone.x + zone.w <= outer.x + outer.w + eps
        and zone.y + zone.h <= outer.y + outer.h + eps
    )


@pytest.mark.parametrize("design", DESIGNS)
def test_story_text_and_header_stay_out_of_the_app_bars(design: str) -> None:
    story = FORMATS["story"]
    placed = place_design(story, design)
    for zone in (placed.text_zone, placed.header_zone):
        assert inside(zone, story.safe)
        assert zone.y * 1920 >= STORY_TOP_PX - 1e-6
        assert (zone.y + zone.h) * 1920 <= 1920 - STORY_BOTTOM_PX + 1e-6


@pytest.mark.parametrize("design", DESIGNS)
def test_no_story_text_is_drawn_under_the_app_bars(design: str) -> None:
    ink = ink_pair("story", design).ink
    rows = np.nonzero(ink.any(axis=1))[0]
    assert rows.size, "no text found on the story"
    assert rows.min() >= STORY_TOP_PX
    assert rows.max() < 1920 - STORY_BOTTOM_PX


@pytest.mark.parametrize(("format_name", "design"), [(f, d) for f in PRINT for d in DESIGNS])
def test_print_text_and_header_zones_keep_the_safe_margin_from_the_trim(
    format_name: str, design: str
) -> None:
    fmt = FORMATS[format_name]
    placed = place_design(fmt, design)
    margin = SAFE_PT[format_name]
    for zone in (placed.text_zone, placed.header_zone):
        assert zone.x * fmt.width_pt >= margin - 1e-6
        assert zone.y * fmt.height_pt >= margin - 1e-6
        assert (1 - zone.x - zone.w) * fmt.width_pt >= margin - 1e-6
        assert (1 - zone.y - zone.h) * fmt.height_pt >= margin - 1e-6


@pytest.mark.parametrize(
    ("format_name", "design"), [(f, d) for f in ("letter", "a4") for d in DESIGNS]
)
def test_no_printed_glyph_comes_closer_to_the_trim_than_the_safe_margin(
    format_name: str, design: str
) -> None:
    # At 72 ppi one pixel is one point.
    margin = SAFE_PT[format_name]
    ink = ink_pair(format_name, design).ink
    rows, cols = np.nonzero(ink)
    height, width = ink.shape
    assert rows.size
    assert rows.min() >= margin - 1
    assert cols.min() >= margin - 1
    assert height - 1 - rows.max() >= margin - 1
    assert width - 1 - cols.max() >= margin - 1


# --------------------------------------------------------------------------- 7. variants


def test_variants_take_the_designs_in_turn() -> None:
    designs = LayoutSettings().designs
    assert designs == list(DESIGNS)
    chosen = [design_for_variant(variant, designs) for variant in range(1, 7)]
    assert chosen[:3] == ["frosted", "split", "scrim"]
    assert chosen[3:] == chosen[:3]
    assert design_for_variant(2, ["scrim"]) == "scrim"
    assert [design_for_variant(v, ["split", "frosted"]) for v in (1, 2, 3)] == [
        "split",
        "frosted",
        "split",
    ]


def test_three_variants_look_different_on_the_page() -> None:
    designs = LayoutSettings().designs
    placed = [place_design(FORMATS["square"], design_for_variant(v, designs)) for v in (1, 2, 3)]
    assert len({p.treatment for p in placed}) == 3
    pngs = [png_pixels(flyer("square", p.design).png) for p in placed]
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(pngs[a] - pngs[b]).mean() > 5
