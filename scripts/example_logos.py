"""Draw the logos of the example briefs in ``briefs/``: ``python -m scripts.example_logos``.

Each logo is a 512x512 RGBA PNG drawn with Pillow from plain shapes in the brief's
brand colours (no font, no randomness), so every run writes the same pictures.
The PNGs are committed next to their briefs; run this again only to change them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 512
#: Drawn at 4x and scaled down: smooth edges without Pillow's (missing) anti-aliasing.
SCALE = 4
BRIEFS = Path(__file__).resolve().parent.parent / "briefs"

Draw = Callable[[ImageDraw.ImageDraw, int], None]


def _cafe(draw: ImageDraw.ImageDraw, u: int) -> None:
    """A cup on its saucer with a fern leaf of steam."""
    draw.ellipse((8 * u, 8 * u, 120 * u, 120 * u), fill="#2F5D50")
    draw.rounded_rectangle((34 * u, 52 * u, 82 * u, 92 * u), radius=10 * u, fill="#F6EFE3")
    draw.ellipse((76 * u, 58 * u, 98 * u, 80 * u), outline="#F6EFE3", width=5 * u)
    draw.rounded_rectangle((24 * u, 92 * u, 98 * u, 99 * u), radius=4 * u, fill="#F6EFE3")
    draw.line((58 * u, 46 * u, 58 * u, 20 * u), fill="#A8C66C", width=3 * u)
    for step in range(4):
        y = (24 + step * 6) * u
        draw.ellipse((47 * u, y, 57 * u, y + 5 * u), fill="#A8C66C")
        draw.ellipse((59 * u, y, 69 * u, y + 5 * u), fill="#A8C66C")


def _yoga(draw: ImageDraw.ImageDraw, u: int) -> None:
    """A rising sun over still water."""
    draw.ellipse((8 * u, 8 * u, 120 * u, 120 * u), fill="#3E4A89")
    draw.pieslice((30 * u, 34 * u, 98 * u, 102 * u), 180, 360, fill="#F4B860")
    for index, width in enumerate((68, 52, 36)):
        y = (74 + index * 9) * u
        left = (64 - width // 2) * u
        draw.rounded_rectangle((left, y, left + width * u, y + 4 * u), radius=2 * u, fill="#CFE3F0")


def _yard_sale(draw: ImageDraw.ImageDraw, u: int) -> None:
    """A price tag on its string."""
    draw.rounded_rectangle((8 * u, 8 * u, 120 * u, 120 * u), radius=24 * u, fill="#F2C14E")
    tag = [(40 * u, 30 * u), (98 * u, 30 * u), (98 * u, 98 * u), (40 * u, 98 * u), (22 * u, 64 * u)]
    draw.polygon(tag, fill="#D1495B")
    draw.ellipse((36 * u, 58 * u, 48 * u, 70 * u), fill="#F2C14E")
    draw.line((42 * u, 64 * u, 14 * u, 22 * u), fill="#3A2E39", width=3 * u)
    for row in range(3):
        y = (48 + row * 14) * u
        draw.rounded_rectangle((58 * u, y, 88 * u, y + 6 * u), radius=3 * u, fill="#FFF8E7")


def _market(draw: ImageDraw.ImageDraw, u: int) -> None:
    """A carrot crossed with a wheat stalk, in a green roundel."""
    draw.ellipse((8 * u, 8 * u, 120 * u, 120 * u), fill="#386641")
    draw.polygon([(44 * u, 40 * u), (64 * u, 40 * u), (54 * u, 104 * u)], fill="#F28F3B")
    for dx in (-8, 0, 8):
        draw.line((54 * u, 40 * u, (54 + dx) * u, 24 * u), fill="#A7C957", width=4 * u)
    draw.line((80 * u, 104 * u, 80 * u, 36 * u), fill="#F2E8CF", width=3 * u)
    for step in range(4):
        y = (40 + step * 12) * u
        draw.ellipse((70 * u, y, 80 * u, y + 9 * u), fill="#F2E8CF")
        draw.ellipse((80 * u, y, 90 * u, y + 9 * u), fill="#F2E8CF")


def _gig(draw: ImageDraw.ImageDraw, u: int) -> None:
    """Two beamed quavers on a dark disc."""
    draw.ellipse((8 * u, 8 * u, 120 * u, 120 * u), fill="#1B1B3A")
    draw.ellipse((30 * u, 78 * u, 54 * u, 98 * u), fill="#FF6B6B")
    draw.ellipse((70 * u, 70 * u, 94 * u, 90 * u), fill="#FF6B6B")
    draw.rectangle((48 * u, 34 * u, 54 * u, 88 * u), fill="#FF6B6B")
    draw.rectangle((88 * u, 26 * u, 94 * u, 80 * u), fill="#FF6B6B")
    draw.polygon(
        [(48 * u, 34 * u), (94 * u, 24 * u), (94 * u, 36 * u), (48 * u, 46 * u)], fill="#FFE66D"
    )


def _charity_run(draw: ImageDraw.ImageDraw, u: int) -> None:
    """A heart with a running track through it."""
    draw.rounded_rectangle((8 * u, 8 * u, 120 * u, 120 * u), radius=28 * u, fill="#0B7A75")
    draw.ellipse((24 * u, 30 * u, 66 * u, 72 * u), fill="#F25F5C")
    draw.ellipse((62 * u, 30 * u, 104 * u, 72 * u), fill="#F25F5C")
    draw.polygon([(26 * u, 60 * u), (102 * u, 60 * u), (64 * u, 104 * u)], fill="#F25F5C")
    for offset in (0, 10):
        y = (62 + offset) * u
        draw.line((14 * u, y, 114 * u, y - 18 * u), fill="#FFFFFF", width=3 * u)


#: Logo file (next to its brief) and how it is drawn, on a 128-unit grid.
LOGOS: dict[str, Draw] = {
    "cafe-logo.png": _cafe,
    "yoga-logo.png": _yoga,
    "yard-sale-logo.png": _yard_sale,
    "market-logo.png": _market,
    "gig-logo.png": _gig,
    "charity-run-logo.png": _charity_run,
}


def draw_logo(draw_shapes: Draw) -> Image.Image:
    """Return a 512x512 RGBA logo drawn by ``draw_shapes`` on a transparent ground."""
    big = Image.new("RGBA", (SIZE * SCALE, SIZE * SCALE), (0, 0, 0, 0))
    draw_shapes(ImageDraw.Draw(big), SIZE * SCALE // 128)
    return big.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def main(folder: Path = BRIEFS) -> list[Path]:
    """Write every logo into ``folder``; return their paths. Raises ``OSError`` on write."""
    written = []
    for name, draw_shapes in LOGOS.items():
        path = folder / name
        draw_logo(draw_shapes).save(path, optimize=True)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in main():
        print(path)
    sys.exit(0)
