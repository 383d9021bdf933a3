"""Typesetting one variant in one format with Typst."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

from prefect import task
from pydantic import BaseModel, ConfigDict, Field

from hyperlocal.errors import TextOverflow
from hyperlocal.layout.backdrop import measure_style
from hyperlocal.layout.designs import DesignName, PlacedDesign, place_design
from hyperlocal.layout.formats import FlyerFormat, get_format
from hyperlocal.layout.geometry import PageGeometry
from hyperlocal.layout.job import TypesetRequest
from hyperlocal.layout.typesetting import TypesetFlyer, typeset_flyer
from hyperlocal.models import Brief, FlyerCopy, GeneratedImage, RenderedFlyer, TextStyle
from tasks.caching import PURE_STEP_POLICY
from tasks.log import step_logger


class RenderRequest(BaseModel):
    """Everything one flyer is typeset from; its hash is the render step's cache key."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    variant: int = Field(ge=1)
    format: str
    copy_: FlyerCopy = Field(alias="copy")
    brief: Brief
    background: GeneratedImage
    heading_font: str
    body_font: str
    font_dirs: list[Path] = Field(default_factory=list, description="layout.font_dirs")
    fonts_digest: str | None = Field(
        default=None, description="The font files in font_dirs: a change re-renders."
    )
    print_ppi: int
    template: Path
    template_digest: str = Field(description="Template and typesetting code: a change re-renders.")
    logo_digest: str | None = Field(default=None, description="Logo content: a change re-renders.")
    design: DesignName = "frosted"
    bleed: bool = Field(default=False, description="Print bleed (print formats only).")
    crop_marks: bool = False

    def typeset_request(
        self, fmt: FlyerFormat, placed: PlacedDesign, style: TextStyle
    ) -> TypesetRequest:
        """Return what typesetting this flyer takes, with its format, design and style."""
        return TypesetRequest(
            fmt=fmt,
            copy=self.copy_,
            brief=self.brief,
            background_png=self.background.png,
            style=style,
            heading_font=self.heading_font,
            body_font=self.body_font,
            font_dirs=self.font_dirs,
            logo_path=self.brief.brand.logo,
            print_ppi=self.print_ppi,
            template=self.template,
            design=placed,
            bleed=self.bleed,
            crop_marks=self.crop_marks,
        )


def file_digest(path: Path) -> str:
    """Return the sha256 of a file's bytes, for cache keys of files read by a step."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shorter_copies(copy: FlyerCopy) -> Iterator[tuple[FlyerCopy, list[str]]]:
    """Yield the copy, then shorter cuts of it: body points from the last, then fine print.

    Facts, headline, subhead and call to action are never cut: a designer trims
    the supporting lines first when a panel is full.
    """
    yield copy, []
    points = list(copy.body_points)
    cut: list[str] = []
    while points:
        cut.append(f"body point {len(points)!s}: {points.pop()}")
        yield copy.model_copy(update={"body_points": list(points)}), list(cut)
    if copy.fine_print:
        cut.append(f"fine print: {copy.fine_print}")
        yield copy.model_copy(update={"body_points": [], "fine_print": ""}), list(cut)


def _typeset_to_fit(
    request: RenderRequest, fmt: FlyerFormat, placed: PlacedDesign, style: TextStyle
) -> tuple[TypesetFlyer, list[str]]:
    overflow: TextOverflow | None = None
    whole = request.typeset_request(fmt, placed, style)
    for copy, cut in shorter_copies(request.copy_):
        try:
            typeset = typeset_flyer(dataclasses.replace(whole, copy=copy))
        except TextOverflow as exc:
            if exc.block != "body":
                raise  # a headline or business name that cannot fit is not cut
            overflow = exc
            continue
        if cut:
            step_logger().warning(
                "variant %d %s: cut to fit the panel: %s",
                request.variant,
                fmt.name,
                "; ".join(cut),
            )
        return typeset, cut
    assert overflow is not None
    raise overflow


@task(name="render_flyer", cache_policy=PURE_STEP_POLICY, persist_result=True)
def render_flyer(request: RenderRequest) -> RenderedFlyer:
    """Return the flyer as PDF (print formats) and PNG bytes.

    Text colour and panel opacity are chosen from the measured picture under
    the design's text zone. Raises ``LayoutError`` when text cannot fit or Typst fails.
    """
    fmt = get_format(request.format)
    placed = place_design(fmt, request.design)
    geometry = PageGeometry.for_format(fmt, request.bleed, request.crop_marks)
    style = measure_style(
        request.background.png, fmt, placed, list(request.brief.brand.colors), geometry
    )
    typeset, cut = _typeset_to_fit(request, fmt, placed, style)
    step_logger().info(
        "variant %d %s (%s) typeset: %dx%d px, contrast %.1f:1",
        request.variant,
        fmt.name,
        placed.design,
        typeset.png_width,
        typeset.png_height,
        style.contrast,
    )
    for fallback in typeset.font_fallbacks:
        step_logger().warning("variant %d %s: %s", request.variant, fmt.name, fallback)
    return RenderedFlyer(
        variant=request.variant,
        format=fmt.name,
        design=placed.design,
        pdf=typeset.pdf,
        png=typeset.png,
        png_width=typeset.png_width,
        png_height=typeset.png_height,
        style=style,
        font_sizes=typeset.font_sizes,
        cut=cut,
        font_fallbacks=typeset.font_fallbacks,
    )
