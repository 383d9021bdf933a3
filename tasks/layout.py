"""Typesetting one variant in one format with Typst."""

from __future__ import annotations

import hashlib
from pathlib import Path

from prefect import task
from pydantic import BaseModel, ConfigDict, Field

from hyperlocal.contrast import measure_text_style
from hyperlocal.formats import get_format
from hyperlocal.models import Brief, FlyerCopy, GeneratedImage, RenderedFlyer
from hyperlocal.typesetting import DEFAULT_TEMPLATE, typeset_flyer
from tasks.caching import PURE_STEP_POLICY
from tasks.log import step_logger

TEMPLATE = DEFAULT_TEMPLATE


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
    print_ppi: int
    template: Path
    template_digest: str = Field(description="Template and typesetting code: a change re-renders.")
    logo_digest: str | None = Field(default=None, description="Logo content: a change re-renders.")


def file_digest(path: Path) -> str:
    """Return the sha256 of a file's bytes, for cache keys of files read by a step."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@task(name="render_flyer", cache_policy=PURE_STEP_POLICY, persist_result=True)
def render_flyer(request: RenderRequest) -> RenderedFlyer:
    """Return the flyer as PDF (print formats) and PNG bytes.

    Text colour and panel opacity are chosen from the measured picture under
    the text zone. Raises ``LayoutError`` when text cannot fit or Typst fails.
    """
    fmt = get_format(request.format)
    style = measure_text_style(
        request.background.png,
        fmt.text_zone,
        list(request.brief.brand.colors),
        page_aspect=fmt.aspect,
    )
    typeset = typeset_flyer(
        fmt=fmt,
        copy=request.copy_,
        brief=request.brief,
        background_png=request.background.png,
        style=style,
        heading_font=request.heading_font,
        body_font=request.body_font,
        logo_path=request.brief.brand.logo,
        print_ppi=request.print_ppi,
        template=request.template,
    )
    step_logger().info(
        "variant %d %s typeset: %dx%d px, contrast %.1f:1",
        request.variant,
        fmt.name,
        typeset.png_width,
        typeset.png_height,
        style.contrast,
    )
    return RenderedFlyer(
        variant=request.variant,
        format=fmt.name,
        pdf=typeset.pdf,
        png=typeset.png,
        png_width=typeset.png_width,
        png_height=typeset.png_height,
        style=style,
        font_sizes=typeset.font_sizes,
    )
