"""The fonts flyers may use: families from PyPI font packages and the user's font folders.

Typst embeds only serif and mono faces and merely warns about an unknown family,
so fonts are resolved here first: an unknown family is a ``LayoutError``; a text
the chosen family cannot draw is set in another available family that can
(``FontLibrary.covering_family``), and a character no available font draws
(Typst would print an empty box) is a ``LayoutError``.

The font packages ship Latin, Greek, Cyrillic and Vietnamese. Other scripts
(Arabic, Hebrew, Devanagari, CJK ...) need font files of the user's own:
``layout.font_dirs`` names folders whose families join the library.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import os
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fontTools.ttLib import TTCollection, TTFont, TTLibError

from hyperlocal.errors import LayoutError

if TYPE_CHECKING:
    import typst

#: The Python packages that ship the layout fonts; each has a ``files/`` folder.
FONT_PACKAGES: tuple[str, ...] = (
    "font_fjallaone",
    "font_lato",
    "font_roboto",
    "font_source_sans_pro",
)
#: Families tried, in this order, when the chosen one cannot draw a text: the
#: widest coverage first (Roboto and Source Sans Pro draw Latin Extended, Greek,
#: Cyrillic and Vietnamese; Lato and Fjalla One less). Families from
#: ``layout.font_dirs`` come after them.
FALLBACK_FAMILIES: tuple[str, ...] = ("Roboto", "Source Sans Pro", "Lato", "Fjalla One")
#: How many folder lists keep a library (and its Typst font book) in memory: a
#: deploy normally uses one, a test run or a change of ``layout.font_dirs`` a few.
CACHED_FOLDER_SETS = 4
_FONT_SUFFIXES = {".ttf", ".otf"}
_COLLECTION_SUFFIXES = {".ttc", ".otc"}


@dataclass(frozen=True)
class FontFace:
    """One face in a font file (a collection holds several, by index)."""

    path: Path
    index: int = 0


def _family_name(font: TTFont) -> str:
    # Typst and FreeType name a family by its typographic name (ID 16), else ID 1.
    name = font["name"]
    return str(name.getDebugName(16) or name.getDebugName(1) or "").strip()


def _faces_in(path: Path) -> Iterator[tuple[str, FontFace]]:
    """Yield (family, face) for every face in a font file; nothing for an unreadable one."""
    suffix = path.suffix.lower()
    try:
        if suffix in _COLLECTION_SUFFIXES:
            for index, font in enumerate(TTCollection(path, lazy=True).fonts):
                yield _family_name(font), FontFace(path, index)
        elif suffix in _FONT_SUFFIXES:
            with TTFont(path, lazy=True) as font:
                yield _family_name(font), FontFace(path)
    except (TTLibError, OSError, KeyError, AssertionError):
        # Not a font after all, or a broken one: it only narrows the choice.
        return


def _package_folders() -> list[Path]:
    """The font files' folders of the installed font packages (their package data)."""
    folders = []
    for package in FONT_PACKAGES:
        try:
            folder = importlib.resources.files(package) / "files"
        except ModuleNotFoundError:
            # A missing font package only narrows the choice; resolve names what is left.
            continue
        if isinstance(folder, Path) and folder.is_dir():
            folders.append(folder.resolve())
    return folders


class FontLibrary:
    """The families the layout may use: the font packages' and those in ``extra_dirs``.

    Build one with ``font_library``: scanning folders takes a while, so libraries
    are cached per folder list (the newest of a few lists, see ``CACHED_FOLDER_SETS``).
    """

    def __init__(self, extra_dirs: Sequence[Path] = ()) -> None:
        self.extra_dirs = tuple(Path(d).expanduser().resolve() for d in extra_dirs)
        families: dict[str, list[FontFace]] = {}
        self.extra_families: list[str] = []
        for folder in [*_package_folders(), *self.extra_dirs]:
            extra = folder in self.extra_dirs
            paths = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
            for path in paths:
                for family, face in _faces_in(path):
                    if not family:
                        continue
                    if extra and family not in families:
                        self.extra_families.append(family)
                    families.setdefault(family, []).append(face)
        self.families = {name: tuple(faces) for name, faces in sorted(families.items())}
        self._coverage: dict[str, frozenset[int]] = {}
        self._typst_fonts: typst.Fonts | None = None

    def folders(self) -> list[Path]:
        """Return every folder holding the library's fonts (for Typst's font search)."""
        seen = dict.fromkeys(face.path.parent for faces in self.families.values() for face in faces)
        return list(seen)

    def typst_fonts(self) -> typst.Fonts:
        """Return Typst's font book of the library's folders, built on first use.

        Scanning the folders takes a while, so one book serves every render with this
        library, and goes when the library does.
        """
        if self._typst_fonts is None:
            import typst  # only typesetting needs Typst; font lookups do not

            self._typst_fonts = typst.Fonts(
                include_system_fonts=False,
                include_embedded_fonts=True,
                font_paths=[str(folder) for folder in self.folders()],
            )
        return self._typst_fonts

    def extra_digest(self) -> str | None:
        """Return a digest of the user's font files (path, size, time): a change re-renders.

        ``None`` without ``extra_dirs``; a file that vanished counts as changed.
        """
        if not self.extra_dirs:
            return None
        digest = hashlib.sha256()
        files = {
            face.path
            for faces in self.families.values()
            for face in faces
            if any(face.path.is_relative_to(d) for d in self.extra_dirs)
        }
        for path in sorted(files):
            try:
                stat = path.stat()
            except OSError:
                digest.update(f"{path}\0gone\n".encode())
                continue
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def resolve(self, family: str) -> str:
        """Return the family name matching ``family`` (case and spacing ignored).

        Raises ``LayoutError`` naming the available families when there is no match:
        Typst itself only warns about an unknown family and falls back to another font.
        """
        wanted = " ".join(family.split()).casefold()
        for name in self.families:
            if name.casefold() == wanted:
                return name
        names = ", ".join(self.families) or "none (install font-lato, font-roboto, ...)"
        hint = "" if self.extra_dirs else "; add folders of font files with layout.font_dirs"
        raise LayoutError(f"font {family!r} is not installed; installed fonts: {names}{hint}")

    def coverage(self, family: str) -> frozenset[int]:
        """Return the code points the ``family`` (an exact name from ``families``) can draw."""
        if family not in self._coverage:
            faces = self.families[family]
            # Weights of one family cover the same characters; the regular face stands for all.
            regular = [f for f in faces if "regular" in f.path.stem.lower()] or list(faces)
            face = regular[0]
            with TTFont(face.path, lazy=True, fontNumber=face.index) as font:
                self._coverage[family] = frozenset(font.getBestCmap() or {})
        return self._coverage[family]

    def missing_glyphs(self, text: str, family: str) -> list[str]:
        """Return the characters of ``text`` that ``family`` cannot draw (in order).

        Spaces, format controls (zero-width joiners) and variation selectors are not
        checked. Raises ``LayoutError`` for an unknown family.
        """
        covered = self.coverage(self.resolve(family))
        missing: list[str] = []
        for char in unicodedata.normalize("NFC", text):
            if char.isspace() or unicodedata.category(char) == "Cf":
                continue
            if 0xFE00 <= ord(char) <= 0xFE0F or ord(char) in covered or char in missing:
                continue
            missing.append(char)
        return missing

    def undrawable(self, text: str) -> list[str]:
        """Return the characters of ``text`` that no family of the library can draw."""
        families = list(self.families)
        if not families:
            return [ch for ch in unicodedata.normalize("NFC", text) if not ch.isspace()]
        return [
            ch
            for ch in self.missing_glyphs(text, families[0])
            if all(self.missing_glyphs(ch, family) for family in families[1:])
        ]

    def covering_family(self, text: str, preferred: str, also: Sequence[str] = ()) -> str:
        """Return the family to set ``text`` in: ``preferred`` when it draws every
        character, else the first of ``also``, ``FALLBACK_FAMILIES`` and the user's
        families that does.

        A whole text gets one family, so a headline never mixes faces letter by
        letter. Raises ``LayoutError`` when no single family draws it all.
        """
        chosen = self.resolve(preferred)
        if not self.missing_glyphs(text, chosen):
            return chosen
        candidates = [*also, *FALLBACK_FAMILIES, *self.extra_families, *self.families]
        for family in dict.fromkeys(candidates):
            if family in self.families and not self.missing_glyphs(text, family):
                return family
        shown = ", ".join(f"{ch!r}" for ch in self.missing_glyphs(text, chosen)[:5])
        raise LayoutError(f"no installed font draws every character of {shown} together")


#: Per folder list (most recently used last): the folders' times and their library.
_LIBRARIES: OrderedDict[tuple[Path, ...], tuple[tuple[tuple[str, int], ...], FontLibrary]] = (
    OrderedDict()
)
_LIBRARIES_LOCK = threading.Lock()


def _folder_times(folders: Sequence[Path]) -> tuple[tuple[str, int], ...]:
    """Return every folder under ``folders`` with its modification time (ns)."""
    times: list[tuple[str, int]] = []
    for top in folders:
        for folder, _dirs, _files in os.walk(top):
            with contextlib.suppress(OSError):
                times.append((folder, os.stat(folder).st_mtime_ns))
    return tuple(times)


def font_library(extra_dirs: Sequence[Path] = ()) -> FontLibrary:
    """Return the library of the font packages plus the folders ``extra_dirs``.

    Cached while those folders stay as they are: a font added to one (a long-running
    ``flows.deploy``) is found by the next run without a restart. Only the newest
    library of a folder list is kept, and only for the ``CACHED_FOLDER_SETS`` lists
    used last, so a deploy that serves for days holds a bounded number of them.
    """
    dirs = tuple(Path(d).expanduser().resolve() for d in extra_dirs)
    times = _folder_times(dirs)
    with _LIBRARIES_LOCK:
        cached = _LIBRARIES.get(dirs)
        if cached is not None and cached[0] == times:
            _LIBRARIES.move_to_end(dirs)
            return cached[1]
    # Built outside the lock: a scan takes a while, and two threads building the same
    # library at once only waste a little work.
    library = FontLibrary(dirs)
    with _LIBRARIES_LOCK:
        # A changed folder replaces its list's old library instead of adding one.
        _LIBRARIES[dirs] = (times, library)
        _LIBRARIES.move_to_end(dirs)
        while len(_LIBRARIES) > CACHED_FOLDER_SETS:
            _LIBRARIES.popitem(last=False)
    return library
