"""The fonts flyers may use: families from PyPI font packages, and what each can draw.

Typst embeds only serif and mono faces and merely warns about an unknown family,
so fonts are resolved here first: an unknown family is a ``LayoutError``; a text
the chosen family cannot draw is set in another installed family that can
(``covering_family``), and a character no installed font draws (Typst would
print an empty box) is a ``LayoutError``.
"""

from __future__ import annotations

import functools
import importlib
import unicodedata
from collections.abc import Sequence
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


#: Families tried, in this order, when the chosen one cannot draw a text: the
#: widest coverage first (Roboto and Source Sans Pro draw Latin Extended, Greek,
#: Cyrillic and Vietnamese; Lato and Fjalla One less).
FALLBACK_FAMILIES: tuple[str, ...] = ("Roboto", "Source Sans Pro", "Lato", "Fjalla One")


def undrawable(text: str) -> list[str]:
    """Return the characters of ``text`` that no installed family can draw (in order)."""
    families = list(installed_fonts())
    if not families:
        return missing_glyphs(text, "")  # raises LayoutError: no fonts at all
    return [
        ch
        for ch in missing_glyphs(text, families[0])
        if all(missing_glyphs(ch, family) for family in families[1:])
    ]


def covering_family(text: str, preferred: str, also: Sequence[str] = ()) -> str:
    """Return the family to set ``text`` in: ``preferred`` when it draws every character,
    else the first installed family of ``also``, then of ``FALLBACK_FAMILIES``, that does.

    A whole text gets one family, so a headline never mixes faces letter by letter.
    Raises ``LayoutError`` when no installed family draws it all (check
    ``undrawable`` first for a message naming the characters).
    """
    chosen = resolve_font(preferred)
    if not missing_glyphs(text, chosen):
        return chosen
    installed = installed_fonts()
    for family in dict.fromkeys([*also, *FALLBACK_FAMILIES, *installed]):
        if family in installed and not missing_glyphs(text, family):
            return family
    shown = ", ".join(f"{ch!r}" for ch in missing_glyphs(text, chosen)[:5])
    raise LayoutError(f"no installed font draws every character of {shown} together")
