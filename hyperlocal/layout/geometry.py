"""Page geometry: the page Typst draws around a format's trim, and the picture's box on it.

A print flyer with bleed is drawn larger than its trim (the bleed, and with crop
marks a slug outside it); the picture's box reaches into the bleed where it meets
the trim. Everything here is in pt of the drawn page unless a name says fractions.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperlocal.layout.formats import FlyerFormat, Zone

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


def trim_pixels(fmt: FlyerFormat, ppi: float) -> tuple[int, int]:
    """Return the size in pixels of ``fmt``'s trim rendered at ``ppi`` (screen formats: as is)."""
    if fmt.unit == "px":
        return round(fmt.width), round(fmt.height)
    return round(fmt.width_pt * ppi / 72), round(fmt.height_pt * ppi / 72)
