"""Layout designs: where the picture, the header and the text go on a page.

A design declares its zones once, in fractions of the format's safe area (or,
for the picture, of the trim), and ``place_design`` turns them into zones of
one format. Those placed zones are the single source of truth: the template
draws them, art direction asks to keep ``calm_zone`` free of detail, the
builtin painter keeps it calm, QC checks it, and the text style is measured on
the pixels under ``text_zone``.

- ``frosted``: the picture fills the page; the text sits on a frosted,
  see-through panel in the lower part.
- ``scrim``: the picture fills the page; the text sits straight on the picture
  over a gradient scrim that darkens (or lightens) the lower part to the edge.
- ``split``: the picture fills the upper part edge to edge; the text sits on a
  solid brand-colour panel below it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hyperlocal.layout.formats import FlyerFormat, Zone

DesignName = Literal["frosted", "scrim", "split"]
Treatment = Literal["frosted", "scrim", "solid"]
DESIGNS: tuple[DesignName, ...] = ("frosted", "split", "scrim")
#: Least panel opacity per treatment: a frosted panel is see-through, a solid one is not.
#: The one source of these floors (``contrast.measure_text_style`` defaults to the
#: frosted one). Panels are never more see-through than this, even over a calm
#: picture: text on a nearly invisible panel looks unfinished, and texture the
#: contrast percentile ignores still hurts.
MIN_OPACITY: dict[Treatment, float] = {"frosted": 0.75, "scrim": 0.55, "solid": 1.0}


class PlacedDesign(BaseModel):
    """A design placed on one format; every zone in fractions of the trim (page) size."""

    model_config = ConfigDict(frozen=True)

    design: DesignName
    treatment: Treatment
    picture: Zone = Field(description="Where the picture goes; an edge at 0 or 1 bleeds.")
    header_zone: Zone
    text_zone: Zone
    calm_zone: Zone = Field(description="What the picture keeps calm, in picture fractions.")
    scrim_from: float = Field(
        default=1.0, description="For scrim: where the gradient starts (page fraction)."
    )

    def picture_aspect(self, fmt: FlyerFormat) -> float:
        """Width over height of the picture's zone on ``fmt``."""
        return fmt.aspect * self.picture.w / self.picture.h

    @property
    def text_on_picture(self) -> bool:
        """Whether the text is set over the picture (else over a solid panel)."""
        return self.treatment != "solid"


def _in_safe(safe: Zone, x: float, y: float, w: float, h: float) -> Zone:
    return Zone(x=safe.x + x * safe.w, y=safe.y + y * safe.h, w=w * safe.w, h=h * safe.h)


def _in_picture(zone: Zone, picture: Zone) -> Zone:
    """``zone`` (page fractions) as fractions of ``picture``, clipped to it."""
    left = max(0.0, (zone.x - picture.x) / picture.w)
    top = max(0.0, (zone.y - picture.y) / picture.h)
    right = min(1.0, (zone.x + zone.w - picture.x) / picture.w)
    bottom = min(1.0, (zone.y + zone.h - picture.y) / picture.h)
    return Zone(x=left, y=top, w=max(0.01, right - left), h=max(0.01, bottom - top))


def place_design(fmt: FlyerFormat, name: str) -> PlacedDesign:
    """Return design ``name`` placed on ``fmt``; raises ``KeyError`` for an unknown design."""
    safe = fmt.safe
    tall = fmt.aspect < 0.9
    header = _in_safe(safe, 0, 0, 1, 0.1 if tall else 0.11)
    full = Zone(x=0, y=0, w=1, h=1)
    if name == "frosted":
        top = 0.47 if tall else 0.34
        text = _in_safe(safe, 0, top, 1, 1 - top)
        return PlacedDesign(
            design="frosted",
            treatment="frosted",
            picture=full,
            header_zone=header,
            text_zone=text,
            calm_zone=text,
        )
    if name == "scrim":
        top = 0.52 if tall else 0.42
        text = _in_safe(safe, 0.02, top, 0.96, 1 - top)
        return PlacedDesign(
            design="scrim",
            treatment="scrim",
            picture=full,
            header_zone=header,
            text_zone=text,
            calm_zone=text,
            scrim_from=max(0.0, text.y - 0.14),
        )
    if name == "split":
        cut = 0.5 if tall else 0.44
        picture = Zone(x=0, y=0, w=1, h=cut)
        gap = safe.y if fmt.ui_top == 0 else 0.06 * fmt.aspect
        text_top = cut + min(gap, 0.06)
        text = Zone(x=safe.x, y=text_top, w=safe.w, h=safe.y + safe.h - text_top)
        return PlacedDesign(
            design="split",
            treatment="solid",
            picture=picture,
            header_zone=header,
            text_zone=text,
            # The text is off the picture; only the header sits on it.
            calm_zone=_in_picture(header, picture),
        )
    raise KeyError(f"unknown design {name!r}; designs: {', '.join(DESIGNS)}")


def design_for_variant(variant: int, designs: list[str] | tuple[str, ...]) -> str:
    """Return the design of 1-based ``variant``: the list in turn, so variants differ."""
    return designs[(variant - 1) % len(designs)]
