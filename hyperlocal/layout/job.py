"""The Typst job for one flyer: what it is typeset from, and the folder Typst compiles.

``TypesetRequest`` holds everything one flyer is typeset from. ``write_job``
turns it into a throw-away job folder for the one data-driven template
(``templates/flyer.typ``): ``data.json``, the picture, the logo, the QR code and
the template. Everything a user or a model wrote reaches Typst only as JSON data,
never as markup, so ``#read(...)`` in a headline prints as text instead of running.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hyperlocal.errors import AssetError, InvalidImage, LayoutError
from hyperlocal.layout.backdrop import make_backdrop
from hyperlocal.layout.designs import PlacedDesign, place_design
from hyperlocal.layout.direction import flyer_direction, isolated
from hyperlocal.layout.fonts import FontLibrary, font_library
from hyperlocal.layout.formats import FlyerFormat
from hyperlocal.layout.geometry import PageGeometry
from hyperlocal.layout.qr import qr_svg
from hyperlocal.models import Brief, FlyerCopy, TextStyle
from hyperlocal.pictures import MAX_LOGO_PIXELS, check_pixels, picture_file_header
from hyperlocal.resources import flyer_template

#: The packaged flyer template (``templates/flyer.typ`` in the source tree).
DEFAULT_TEMPLATE = flyer_template()


@dataclass(frozen=True, kw_only=True)
class TypesetRequest:
    """Everything one flyer is typeset from: ``typeset_flyer``'s and ``write_job``'s input.

    ``fmt`` is the format and ``design`` where picture, header and text go on it
    (default: ``frosted``); ``style`` the colours measured on ``background_png``
    (``backdrop.measure_style``). ``print_ppi`` is the print formats' PNG
    resolution. On print formats ``bleed`` extends the picture 1/8 in (3 mm) past
    the trim and ``crop_marks`` adds marks outside the bleed. ``font_dirs`` are
    folders of font files whose families may be named and serve as fallbacks
    (``layout.font_dirs``).
    """

    fmt: FlyerFormat
    copy: FlyerCopy
    brief: Brief
    background_png: bytes = field(repr=False)
    style: TextStyle
    heading_font: str
    body_font: str
    logo_path: Path | None
    print_ppi: int
    template: Path = DEFAULT_TEMPLATE
    design: PlacedDesign | None = None
    bleed: bool = False
    crop_marks: bool = False
    font_dirs: Sequence[Path] = ()

    def __post_init__(self) -> None:
        # A tuple, so that a caller's list cannot change under a frozen request.
        object.__setattr__(self, "font_dirs", tuple(self.font_dirs))

    @property
    def placed(self) -> PlacedDesign:
        """The design placed on the format (``frosted`` when none was given)."""
        return self.design or place_design(self.fmt, "frosted")

    @property
    def geometry(self) -> PageGeometry:
        """The page Typst draws for this request (trim, bleed, slug)."""
        return PageGeometry.for_format(self.fmt, self.bleed, self.crop_marks)


@dataclass(frozen=True)
class TypstJob:
    """A job folder written for Typst: what compiling it and checking the result need."""

    entry: Path
    geometry: PageGeometry
    scale: dict[str, float]
    ppi: float
    font_fallbacks: list[str] = field(default_factory=list)


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


def url_label(url: str) -> str:
    """Return a short, typeable form of the link to print by the button ('' when too long)."""
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


def write_job(folder: Path, request: TypesetRequest) -> TypstJob:
    """Write the Typst job for one flyer into ``folder`` and return how to compile it.

    The folder gets ``data.json``, ``bg.png`` (frosted under the text for the
    ``frosted`` treatment), the logo, ``qr.svg`` and ``flyer.typ``; compile
    ``entry`` with ``root=folder`` and the PNG at ``ppi``. Raises ``LayoutError``
    for an unknown font, a character no installed font can draw or a link that is
    not http(s), ``AssetError`` for a logo file that is missing, ``InvalidImage``
    for a background that is not a picture.
    """
    fmt, copy, brief, style = request.fmt, request.copy, request.brief, request.style
    library = font_library(request.font_dirs)
    heading = library.resolve(request.heading_font)
    body = library.resolve(request.body_font)
    facts = [run for run in (copy.when, copy.where, copy.price) if run]
    label = url_label(brief.url) if brief.url else ""
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
    logo_path = request.logo_path
    if logo_path is not None and not logo_path.is_file():
        raise AssetError(f"logo {str(logo_path)!r} does not exist or is not a file")
    qr = qr_svg(brief.url) if brief.url else None
    scale = type_scale(fmt)
    placed = request.placed
    geometry = request.geometry
    picture = geometry.picture_rect(placed.picture)
    backdrop = make_backdrop(request.background_png, placed, geometry, style, scale["radius"])
    (folder / "bg.png").write_bytes(backdrop.png)
    logo_name = None
    if logo_path is not None:
        logo_name = "logo" + logo_path.suffix.lower()
        shutil.copyfile(logo_path, folder / logo_name)
        _check_logo_copy(folder / logo_name, logo_path)
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
            "header_opacity": backdrop.header_opacity,
            "accent": style.accent_color,
            "accent_text": style.accent_text_color,
        },
        "text": {
            "business": isolated(brief.business, direction),
            "headline": copy.headline,
            "subhead": isolated(copy.subhead, direction),
            "facts": [isolated(fact, direction) for fact in facts],
            "points": [isolated(point, direction) for point in copy.body_points],
            "cta": isolated(copy.call_to_action, direction),
            "fine_print": isolated(copy.fine_print, direction),
            "link": isolated(label, direction),
        },
        "files": {
            "background": "/bg.png",
            "logo": f"/{logo_name}" if logo_name else None,
            "qr": "/qr.svg" if qr is not None else None,
        },
    }
    (folder / "data.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    shutil.copyfile(request.template, folder / "flyer.typ")
    return TypstJob(
        entry=folder / "flyer.typ",
        geometry=geometry,
        scale=scale,
        ppi=fmt.png_ppi(request.print_ppi),
        font_fallbacks=fallbacks,
    )


def _check_logo_copy(copy: Path, original: Path) -> None:
    """Hold the copy Typst will decode to the logo pixel limit, read from its header.

    The brief's logo was checked when the brief was read; the file may have been
    replaced since (a run from the cache, a long batch), so what is rendered is
    checked again. Raises ``AssetError`` with one line.
    """
    if copy.suffix not in (".png", ".jpg", ".jpeg"):
        return  # SVG: Typst rasterises nothing of it beyond the page's own size
    try:
        _format, size = picture_file_header(copy)
        check_pixels(size, MAX_LOGO_PIXELS, "a logo")
    except (InvalidImage, OSError) as exc:
        raise AssetError(f"logo {str(original)!r}: {exc}") from None
