"""The fonts flyers may use: families from PyPI font packages, and what each can draw.

Typst embeds only serif and mono faces and merely warns about an unknown family,
so fonts are resolved here first: an unknown family, or a character no chosen
font can draw (Typst would print an empty box), is a ``LayoutError``.
"""

from __future__ import annotations

import functools
import importlib
import unicodedata
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import ImageFont

from hyperlocal.errors import LayoutError

#: The Python packages that ship the layout fonts; each has a ``files/`` folder.
FONT_PACKAGES: tuple[str, ...] = (
    "font_fjallaone",
    "font_lato",
    "font_roboto",
    "font_source_sans_pro",
)
_FONT_SUFFIXES = {".ttf", ".otf"}


@functools.cache
def _font_files() -> dict[str, tuple[Path, ...]]:
    """Map each installed family name to its font files (read from the files themselves)."""
    families: dict[str, list[Path]] = {}
    for package in FONT_PACKAGES:
        try:
            module = importlib.import_module(package)
        except ImportError:
            # A missing font package only narrows the choice; resolve_font names what is left.
            continue
        if module.__file__ is None:
            continue
        folder = Path(module.__file__).resolve().parent / "files"
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.suffix.lower() not in _FONT_SUFFIXES:
                continue
            try:
                family = ImageFont.truetype(str(path)).getname()[0]
            except OSError:
                continue
            if family:
                families.setdefault(family, []).append(path)
    return {name: tuple(paths) for name, paths in sorted(families.items())}


def installed_fonts() -> dict[str, Path]:
    """Return the font families the layout may use, each with the folder holding its files.

    Families come from the font packages (``FONT_PACKAGES``) and are named as the
    font files name themselves (e.g. ``"Source Sans Pro"``). The result is cached.
    """
    return {family: paths[0].parent for family, paths in _font_files().items()}


def resolve_font(family: str) -> str:
    """Return the installed family name matching ``family`` (case and spacing ignored).

    Raises ``LayoutError`` naming the installed families when there is no match:
    Typst itself only warns about an unknown family and falls back to another font.
    """
    wanted = " ".join(family.split()).casefold()
    for name in installed_fonts():
        if name.casefold() == wanted:
            return name
    names = ", ".join(installed_fonts()) or "none (install font-lato, font-roboto, ...)"
    raise LayoutError(f"font {family!r} is not installed; installed fonts: {names}")


@functools.cache
def _coverage(family: str) -> frozenset[int]:
    paths = _font_files()[family]
    # Weights of one family cover the same characters; the regular face stands for them all.
    regular = [p for p in paths if "regular" in p.stem.lower()] or list(paths)
    with TTFont(regular[0], lazy=True) as font:
        return frozenset(font.getBestCmap() or {})


def missing_glyphs(text: str, family: str) -> list[str]:
    """Return the characters of ``text`` that the installed ``family`` cannot draw (in order).

    Spaces, format controls (zero-width joiners) and variation selectors are not
    checked. Typst would print such characters as empty boxes, so callers refuse
    or rewrite the text instead. Raises ``LayoutError`` for an unknown family.
    """
    covered = _coverage(resolve_font(family))
    missing: list[str] = []
    for char in unicodedata.normalize("NFC", text):
        if char.isspace() or unicodedata.category(char) == "Cf":
            continue
        if 0xFE00 <= ord(char) <= 0xFE0F or ord(char) in covered or char in missing:
            continue
        missing.append(char)
    return missing
