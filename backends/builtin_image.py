"""The builtin image backend: ``BuiltinPainter``, seeded procedural art with no model.

The painting itself lives in ``backends.builtin_painter`` (one module per
concern: colour, scheme, canvas, shapes, each style, finishing); this module is
the integration around it: identity, health and ``generate``. The names other
code imports from here (``choose_style``, ``paint_png``, ``paint_array``,
``STYLES``, ``Style``) are the package's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL

import backends.builtin_painter
import hyperlocal.colors
from backends.base import Health, ImageRequest
from backends.builtin_painter import STYLES, Style, choose_style, paint_array, paint_png
from backends.source_revision import files_revision
from hyperlocal.models import BackendIdentity, GeneratedImage, PromptSyntax
from hyperlocal.prompts.clip_tokens import TokenCounter, clip_counter

__all__ = ["STYLES", "BuiltinPainter", "Style", "choose_style", "paint_array", "paint_png"]


def painter_sources() -> tuple[Path, ...]:
    """Return the source files that decide the painter's pixels, in a fixed order.

    This module, every module of ``backends.builtin_painter`` (found on disk, so a new
    module is covered without a list to update) and ``hyperlocal.colors``, whose
    parsing and sRGB curve the colour scheme starts from. Never raises.
    """
    package = Path(backends.builtin_painter.__file__ or "").parent
    return (
        Path(__file__),
        *sorted(package.glob("*.py")),
        Path(hyperlocal.colors.__file__ or ""),
    )


class BuiltinPainter:
    """Paints abstract poster backgrounds from the brand palette, with no model at all."""

    def __init__(self) -> None:
        """Build the painter; it needs nothing and never fails."""
        # The painter is code, not weights: its source is its revision, so an edit to any
        # module that decides the pixels invalidates exactly the pictures it cached.
        self._identity = BackendIdentity(
            role="image",
            kind="builtin",
            model="procedural-painter",
            revision=files_revision(painter_sources()),
        )

    @property
    def identity(self) -> BackendIdentity:
        """What paints: the builtin procedural painter at its source revision."""
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
