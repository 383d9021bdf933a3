"""Typesetting: one flyer compiled by Typst from data, never from user markup.

Pure Python (no Prefect). ``typeset_flyer`` writes the job folder for a
``TypesetRequest`` (``job.write_job``), compiles it with typst-py (PDF for print
formats, PNG always), reads back the font sizes the template settled on, sets the
PDF's print boxes and cuts the PNG to the trim (``trim``). A text that cannot
fit becomes a ``TextOverflow`` naming its block.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import typst

from hyperlocal import colors
from hyperlocal.errors import LayoutError, TextOverflow, first_line
from hyperlocal.layout import (
    backdrop,
    contrast,
    designs,
    direction,
    fonts,
    formats,
    geometry,
    job,
    qr,
    trim,
)
from hyperlocal.layout.fonts import font_library
from hyperlocal.layout.formats import FlyerFormat
from hyperlocal.layout.geometry import trim_pixels
from hyperlocal.layout.job import DEFAULT_TEMPLATE, TypesetRequest, write_job
from hyperlocal.layout.trim import crop_to_trim, set_print_boxes
from hyperlocal.pictures import png_size

__all__ = [
    "DEFAULT_TEMPLATE",
    "TypesetFlyer",
    "TypesetRequest",
    "template_digest",
    "typeset_flyer",
]

#: The code whose output a rendered flyer depends on, besides the template (colours are
#: chosen with ``hyperlocal.colors``).
_RENDER_MODULES = (
    backdrop,
    colors,
    contrast,
    designs,
    direction,
    fonts,
    formats,
    geometry,
    job,
    qr,
    trim,
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


def typeset_flyer(request: TypesetRequest) -> TypesetFlyer:
    """Typeset one flyer and return its PDF (when the format has one), PNG and font sizes.

    The PNG is rendered at ``fmt.png_ppi(print_ppi)`` and is exactly the format's
    trim in pixels (1080x1080 for a square post, 1275x1650 for letter at 150 ppi).
    With bleed or crop marks the PDF's TrimBox is the format's size and its
    BleedBox the bleed's. Raises ``LayoutError`` for text that cannot fit
    (``TextOverflow``, naming the block), an unknown font, a character no installed
    font can draw or a template failure; ``AssetError`` for a logo file that is
    missing; ``InvalidImage`` for a background that is not a picture.
    """
    fmt = request.fmt
    with (
        tempfile.TemporaryDirectory(prefix="hyperlocal-typst-") as folder,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="typst-png") as beside,
    ):
        root = Path(folder)
        job = write_job(root, request)
        book = font_library(request.font_dirs).typst_fonts()
        compiler = typst.Compiler(str(job.entry), root=str(root), font_paths=book)
        try:
            if "pdf" in fmt.outputs:
                pdf: bytes | None = _compile(compiler, "pdf")
                # Typst lets go of the GIL while it renders: the PNG is rendered on the
                # side while this thread sets the PDF's boxes (pypdf, pure Python).
                rendering = beside.submit(_compile, compiler, "png", job.ppi)
                pdf = set_print_boxes(pdf, job.geometry)
                png = rendering.result()
            else:
                pdf = None
                png = _compile(compiler, "png", job.ppi)
            fitted = json.loads(compiler.query("<fitted>", field="value"))
        except RuntimeError as exc:  # typst.TypstError, or a plain one from query
            raise _layout_error(exc, fmt, job.scale) from exc
    expected = trim_pixels(fmt, job.ppi)
    if job.geometry.offset > 0:
        png = crop_to_trim(png, job.geometry, job.ppi, expected)
    width, height = png_size(png)
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
