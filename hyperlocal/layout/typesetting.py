"""Typesetting: one flyer compiled by Typst from data, never from user markup.

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
import io
import json
import shutil
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typst
from PIL import Image, ImageDraw, ImageFilter

from hyperlocal.errors import AssetError, LayoutError, TextOverflow, first_line
from hyperlocal.layout import contrast, designs, fonts, formats, qr
from hyperlocal.layout.contrast import (
    load_picture,
    measure_text_style,
    needed_opacity,
    visible_box,
    zone_pixels,
)
from hyperlocal.layout.designs import MIN_OPACITY, PlacedDesign, place_design
from hyperlocal.layout.fonts import FontLibrary, font_library
from hyperlocal.layout.formats import FlyerFormat, Zone
from hyperlocal.layout.qr import qr_svg
from hyperlocal.models import Brief, FlyerCopy, TextStyle
from hyperlocal.pictures import png_size
from hyperlocal.resources import flyer_template

#: The packaged flyer template (``templates/flyer.typ`` in the source tree).
DEFAULT_TEMPLATE = flyer_template()
#: The code whose output a rendered flyer depends on, besides the template.
_RENDER_MODULES = (contrast, designs, fonts, formats, qr)


def _frosted(png: bytes, zone: Zone, page_aspect: float, radius: float) -> bytes:
    """Blur the picture under ``zone`` (frosted glass), so texture never fights the text.

    ``radius`` is the panel's corner radius as a share of the page width. Blurring
    only evens out the pixels the style was measured on, so contrast can only gain.
    """
    image = load_picture(png)
    left, top, width, height = visible_box(image.size, page_aspect)
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


#: Room beyond the bleed for crop marks (1/4 inch), only when marks are asked for.
SLUG_PT = 18.0


@dataclass(frozen=True)
class PageGeometry:
    """The page Typst draws: the trim, plus bleed and (for crop marks) a slug around it."""

    trim_width: float
    trim_height: float
    bleed: float = 0.0
    slug: float = 0.0

    @classmethod
    def for_format(cls, fmt: FlyerFormat, bleed: bool, crop_marks: bool) -> PageGeometry:
        """Return the page for ``fmt``; bleed and crop marks only apply to print formats."""
        printing = fmt.medium == "print"
        return cls(
            trim_width=fmt.width_pt,
            trim_height=fmt.height_pt,
            bleed=fmt.bleed_pt if printing and (bleed or crop_marks) else 0.0,
            slug=SLUG_PT if printing and crop_marks else 0.0,
        )

    @property
    def offset(self) -> float:
        """Distance from the page edge to the trim, in pt."""
        return self.bleed + self.slug

    @property
    def width(self) -> float:
        """Whole page width in pt."""
        return self.trim_width + 2 * self.offset

    @property
    def height(self) -> float:
        """Whole page height in pt."""
        return self.trim_height + 2 * self.offset

    def picture_rect(self, picture: Zone) -> tuple[float, float, float, float]:
        """Return the picture's box (x, y, w, h in pt of the page), edges extended into bleed."""
        left = picture.x * self.trim_width - (self.bleed if picture.x <= 0 else 0.0)
        top = picture.y * self.trim_height - (self.bleed if picture.y <= 0 else 0.0)
        right = (picture.x + picture.w) * self.trim_width
        right += self.bleed if picture.x + picture.w >= 1 else 0.0
        bottom = (picture.y + picture.h) * self.trim_height
        bottom += self.bleed if picture.y + picture.h >= 1 else 0.0
        return left + self.offset, top + self.offset, right - left, bottom - top

    def in_picture(self, zone: Zone, picture: Zone) -> tuple[Zone, float]:
        """Return ``zone`` (trim fractions) in fractions of the picture's box, and its aspect."""
        x, y, w, h = self.picture_rect(picture)
        zx = self.offset + zone.x * self.trim_width
        zy = self.offset + zone.y * self.trim_height
        left = min(0.999, max(0.0, (zx - x) / w))
        top = min(0.999, max(0.0, (zy - y) / h))
        right = min(1.0, (zx + zone.w * self.trim_width - x) / w)
        bottom = min(1.0, (zy + zone.h * self.trim_height - y) / h)
        width = min(1 - left, max(0.001, right - left))
        height = min(1 - top, max(0.001, bottom - top))
        inside = Zone(x=left, y=top, w=width, h=height)
        return inside, w / h


def measure_style(
    background_png: bytes,
    fmt: FlyerFormat,
    placed: PlacedDesign,
    palette: list[str],
    geometry: PageGeometry,
) -> TextStyle:
    """Choose text and panel colours for the design from the picture under its text zone.

    A frosted panel is at least 75 % opaque, a scrim 55 %, a solid panel 100 %;
    each reaches WCAG 4.5:1 on the worst-case pixel. Raises ``InvalidImage``.
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
class TypesetFlyer:
    """One compiled flyer: its files and the font sizes the template settled on (pt)."""

    pdf: bytes | None
    png: bytes
    png_width: int
    png_height: int
    font_sizes: dict[str, float] = field(default_factory=dict)
    font_fallbacks: list[str] = field(default_factory=list)
    """Texts set in another family than the chosen one, and why."""


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


_FIRST_STRONG_ISOLATE, _POP_ISOLATE = "\u2068", "\u2069"
#: Languages written right to left (ISO 639 codes).
RTL_LANGUAGES = frozenset(
    {"ar", "arc", "ckb", "dv", "fa", "he", "iw", "ks", "ps", "sd", "syr", "ug", "ur", "yi"}
)


def flyer_direction(brief: Brief, headline: str) -> str:
    """Return which way the flyer reads: from the brief's language when it has one,
    else from the headline's first letter with a direction (``"rtl"`` or ``"ltr"``)."""
    language = brief.text_language()
    if language is not None:
        return "rtl" if language[0] in RTL_LANGUAGES else "ltr"
    return first_strong_direction(headline) or "ltr"


def first_strong_direction(text: str) -> str | None:
    """Return ``"rtl"`` or ``"ltr"`` after the first letter with a direction in ``text``
    (Hebrew and Arabic letters are right to left), ``None`` when it has none (digits)."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return "rtl"
        if kind == "L":
            return "ltr"
    return None


def _isolated(text: str, direction: str) -> str:
    """Return ``text`` as a bidi isolate when it runs the other way than the flyer.

    An English line on an Arabic flyer keeps its own order ("14 Mill Lane.", not
    ".Mill Lane 14") and is still aligned with the rest; text that runs the
    flyer's way is returned unchanged.
    """
    own = first_strong_direction(text)
    if own is None or own == direction:
        return text
    return _FIRST_STRONG_ISOLATE + text + _POP_ISOLATE


def _check_glyphs(library: FontLibrary, fields: dict[str, str]) -> None:
    """Raise ``LayoutError`` naming the first field with a character no available font draws."""
    for name, text in fields.items():
        missing = library.undrawable(text)
        if missing:
            shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in missing[:5])
            hint = "" if library.extra_dirs else " (or add a font that can to layout.font_dirs)"
            raise LayoutError(
                f"the {name} contains {shown}, which no installed font can draw: remove it{hint}"
            )


def _family_for(
    library: FontLibrary, role: str, text: str, chosen: str, other: str, fallbacks: list[str]
) -> str:
    """Return the family to set a role's ``text`` in; note a fallback in ``fallbacks``."""
    try:
        family = library.covering_family(text, chosen, also=[other])
    except LayoutError:
        raise LayoutError(
            f"no single installed font draws every character of the {role}: "
            "write it in fewer scripts"
        ) from None
    if family != chosen:
        shown = ", ".join(f"{ch!r}" for ch in library.missing_glyphs(text, chosen)[:5])
        fallbacks.append(f"{role}: {chosen} cannot draw {shown}; set in {family}")
    return family


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
        return TextOverflow(_overflow_message(block, fmt, scale), block)
    hints = getattr(exc, "hints", None) or []
    hint = f" (hint: {hints[0]})" if hints else ""
    first = first_line(message, default=type(exc).__name__)
    return LayoutError(f"the {fmt.name} flyer template failed: {first}{hint}")


@functools.cache
def _typst_fonts(library: FontLibrary) -> typst.Fonts:
    # Scanning font folders takes a while; one font book per library serves every render.
    return typst.Fonts(
        include_system_fonts=False,
        include_embedded_fonts=True,
        font_paths=[str(folder) for folder in library.folders()],
    )


@dataclass(frozen=True)
class TypstJob:
    """A job folder written for Typst: what compiling it and checking the result need."""

    entry: Path
    geometry: PageGeometry
    scale: dict[str, float]
    ppi: float
    font_fallbacks: list[str] = field(default_factory=list)


def write_job(
    folder: Path,
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
    design: PlacedDesign | None = None,
    bleed: bool = False,
    crop_marks: bool = False,
    font_dirs: Sequence[Path] = (),
) -> TypstJob:
    """Write the Typst job for one flyer into ``folder`` and return how to compile it.

    The folder gets ``data.json``, ``bg.png`` (frosted under the text for the
    ``frosted`` treatment), the logo, ``qr.svg`` and ``flyer.typ``; compile
    ``entry`` with ``root=folder`` and the PNG at ``ppi``. The arguments are
    ``typeset_flyer``'s. Raises ``LayoutError`` for an unknown font or a
    character no installed font can draw, ``AssetError`` for a logo file that is
    missing, ``InvalidImage`` for a background that is not a picture.
    """
    library = font_library(font_dirs)
    heading = library.resolve(heading_font)
    body = library.resolve(body_font)
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
    _check_glyphs(library, {"headline": copy.headline} | body_fields)
    # A text the chosen family cannot draw (a Polish headline in Fjalla One) is set
    # whole in one that can, the flyer's other family first.
    fallbacks: list[str] = []
    heading = _family_for(library, "headline", copy.headline, heading, body, fallbacks)
    body_text = " ".join(body_fields.values())
    body = _family_for(library, "body text", body_text, body, heading, fallbacks)
    if logo_path is not None and not logo_path.is_file():
        raise AssetError(f"logo {str(logo_path)!r} does not exist or is not a file")
    qr = qr_svg(brief.url) if brief.url else None
    scale = type_scale(fmt)
    placed = design or place_design(fmt, "frosted")
    geometry = PageGeometry.for_format(fmt, bleed, crop_marks)
    picture = geometry.picture_rect(placed.picture)
    # The header chip sits on whatever the picture has there: measure it too, with the
    # text panel's colours, so the business name is as readable as the body.
    header_zone, aspect = geometry.in_picture(placed.header_zone, placed.picture)
    header_opacity = max(
        MIN_OPACITY["frosted"],
        needed_opacity(
            zone_pixels(background_png, header_zone, aspect),
            style.panel_color,
            style.text_color,
        ),
    )
    if placed.treatment == "frosted":
        corner = scale["radius"] / picture[2]
        text_zone, _ = geometry.in_picture(placed.text_zone, placed.picture)
        background_png = _frosted(background_png, text_zone, aspect, corner)
    (folder / "bg.png").write_bytes(background_png)
    logo_name = None
    if logo_path is not None:
        logo_name = "logo" + logo_path.suffix.lower()
        shutil.copyfile(logo_path, folder / logo_name)
    if qr is not None:
        (folder / "qr.svg").write_text(qr, encoding="utf-8")
    direction = flyer_direction(brief, copy.headline)
    language = brief.text_language()
    data: dict[str, Any] = {
        "page": {
            "width": geometry.width,
            "height": geometry.height,
            "trim_width": geometry.trim_width,
            "trim_height": geometry.trim_height,
            "offset": geometry.offset,
            "bleed": geometry.bleed,
            "crop_marks": geometry.slug > 0,
        },
        "design": {
            "name": placed.design,
            "treatment": placed.treatment,
            "picture": dict(zip(("x", "y", "w", "h"), picture, strict=True)),
            "scrim_from": geometry.offset + placed.scrim_from * geometry.trim_height,
        },
        "sizes": scale,
        "header_zone": placed.header_zone.model_dump(),
        "text_zone": placed.text_zone.model_dump(),
        "fonts": {"heading": heading, "body": body},
        # Right to left (Hebrew, Arabic) mirrors the flyer.
        "direction": direction,
        # Typst's language rules (quotes, line breaking); unset: Typst's default.
        "lang": language[0] if language else None,
        "region": language[1] if language else None,
        "style": {
            "text": style.text_color,
            "panel": style.panel_color,
            "panel_opacity": style.panel_opacity,
            "header_opacity": header_opacity,
            "accent": style.accent_color,
            "accent_text": style.accent_text_color,
        },
        "text": {
            "business": _isolated(brief.business, direction),
            "headline": copy.headline,
            "subhead": _isolated(copy.subhead, direction),
            "facts": [_isolated(fact, direction) for fact in facts],
            "points": [_isolated(point, direction) for point in copy.body_points],
            "cta": _isolated(copy.call_to_action, direction),
            "fine_print": _isolated(copy.fine_print, direction),
            "link": _isolated(label, direction),
        },
        "files": {
            "background": "/bg.png",
            "logo": f"/{logo_name}" if logo_name else None,
            "qr": "/qr.svg" if qr is not None else None,
        },
    }
    (folder / "data.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    shutil.copyfile(template, folder / "flyer.typ")
    return TypstJob(
        entry=folder / "flyer.typ",
        geometry=geometry,
        scale=scale,
        ppi=fmt.png_ppi(print_ppi),
        font_fallbacks=fallbacks,
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
    design: PlacedDesign | None = None,
    bleed: bool = False,
    crop_marks: bool = False,
    font_dirs: Sequence[Path] = (),
) -> TypesetFlyer:
    """Typeset one flyer and return its PDF (when the format has one), PNG and font sizes.

    The PNG is rendered at ``fmt.png_ppi(print_ppi)`` and is exactly the format's
    trim in pixels (1080x1080 for a square post, 1275x1650 for letter at 150 ppi).
    ``design`` places picture, header and text (default: ``frosted``). On print
    formats ``bleed`` extends the picture 1/8 in (3 mm) past the trim and
    ``crop_marks`` adds marks outside the bleed; the PDF's TrimBox is then the
    format's size and its BleedBox the bleed's. ``font_dirs`` are folders of font
    files whose families may be named and serve as fallbacks (``layout.font_dirs``).
    Raises ``LayoutError`` for text that cannot fit (naming the block), an unknown
    font, a character no installed font can draw or a template failure; ``AssetError``
    for a logo file that is missing; ``InvalidImage`` for a background that is not
    a picture.
    """
    with tempfile.TemporaryDirectory(prefix="hyperlocal-typst-") as folder:
        root = Path(folder)
        job = write_job(
            root,
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
            design=design,
            bleed=bleed,
            crop_marks=crop_marks,
            font_dirs=font_dirs,
        )
        geometry, scale, ppi = job.geometry, job.scale, job.ppi
        fonts_book = _typst_fonts(font_library(font_dirs))
        compiler = typst.Compiler(str(job.entry), root=str(root), font_paths=fonts_book)
        try:
            pdf = _compile(compiler, "pdf") if "pdf" in fmt.outputs else None
            png = _compile(compiler, "png", ppi)
            fitted = json.loads(compiler.query("<fitted>", field="value"))
        except RuntimeError as exc:  # typst.TypstError, or a plain one from query
            raise _layout_error(exc, fmt, scale) from exc
    if pdf is not None:
        pdf = set_print_boxes(pdf, geometry)
    if geometry.offset > 0:
        png = _crop_to_trim(png, geometry, ppi, _expected_pixels(fmt, ppi))
    width, height = png_size(png)
    expected = _expected_pixels(fmt, ppi)
    if (width, height) != expected:
        raise LayoutError(
            f"the {fmt.name} PNG came out {width}x{height} px instead of "
            f"{expected[0]}x{expected[1]}: the template's page size is wrong"
        )
    sizes = {name: round(float(value), 2) for found in fitted for name, value in found.items()}
    return TypesetFlyer(
        pdf=pdf,
        png=png,
        png_width=width,
        png_height=height,
        font_sizes=sizes,
        font_fallbacks=job.font_fallbacks,
    )


def set_print_boxes(pdf: bytes, geometry: PageGeometry) -> bytes:
    """Return ``pdf`` with its TrimBox (the format) and BleedBox (trim plus bleed) set.

    Printers cut at the TrimBox; with no bleed both boxes are the whole page.
    """
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import RectangleObject

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    for page in writer.pages:
        height = float(page.mediabox.height)
        # PDF boxes count from the bottom-left corner; Typst's page is the MediaBox.
        trim = (
            geometry.offset,
            height - geometry.offset - geometry.trim_height,
            geometry.offset + geometry.trim_width,
            height - geometry.offset,
        )
        inset = geometry.slug
        page.trimbox = RectangleObject(trim)
        page.bleedbox = RectangleObject(
            (inset, inset, float(page.mediabox.width) - inset, height - inset)
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _crop_to_trim(png: bytes, geometry: PageGeometry, ppi: float, size: tuple[int, int]) -> bytes:
    """Cut the bleed and marks off a rendered page: the PNG is the trimmed flyer."""
    with Image.open(io.BytesIO(png)) as page:
        left = round(geometry.offset * ppi / 72)
        trimmed = page.crop((left, left, left + size[0], left + size[1]))
        out = io.BytesIO()
        trimmed.save(out, format="PNG")
    return out.getvalue()


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


def template_digest(template: Path = DEFAULT_TEMPLATE) -> str:
    """Return a sha256 of the template and of the layout code, for cache keys.

    A change to the template or to the code that measures, draws and typesets
    re-runs layout. Raises ``OSError`` when the template is unreadable.
    """
    digest = hashlib.sha256()
    digest.update(Path(template).read_bytes())
    for source in (__file__, *(module.__file__ or "" for module in _RENDER_MODULES)):
        digest.update(b"\0")
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()
