"""Fonts: the packaged families, the user's font folders, and text no font can draw.

The user's fonts here are built on the spot with fontTools (box glyphs for a few
Hebrew letters), so the tests need no font from the system or the network.
"""

from __future__ import annotations

import gc
import io
import json
import os
import weakref
from pathlib import Path

import numpy as np
import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTCollection, TTFont
from PIL import Image

from flows.flyer import flyer
from hyperlocal.briefs.loading import load_brief
from hyperlocal.errors import LayoutError
from hyperlocal.layout import typesetting as ts
from hyperlocal.layout.direction import first_strong_direction, isolated
from hyperlocal.layout.fonts import CACHED_FOLDER_SETS, FontLibrary, font_library
from hyperlocal.layout.formats import FORMATS
from hyperlocal.layout.job import TypesetRequest, write_job
from tests.test_typesetting import (
    gradient_png,
    make_brief,
    make_copy,
    pdf_fonts,
    pdf_text,
    render,
    style_for,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BRIEF_FILE = PROJECT_ROOT / "examples" / "briefs" / "bakery.toml"
HEBREW = "שלום חלה טרייה"  # "hello, fresh challah"
HEBREW_LETTERS = sorted(set(HEBREW.replace(" ", "")))


def build_font(family: str, chars: str | list[str], style: str = "Regular") -> TTFont:
    """Return a TrueType font named ``family`` whose glyphs for ``chars`` are boxes."""
    names = [".notdef", "space", *(f"uni{ord(ch):04X}" for ch in chars)]
    builder = FontBuilder(unitsPerEm=1000, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({32: "space"} | {ord(ch): f"uni{ord(ch):04X}" for ch in chars})
    glyphs = {}
    for name in names:
        pen = TTGlyphPen(None)
        if name != "space":
            pen.moveTo((60, 0))
            pen.lineTo((60, 700))
            pen.lineTo((540, 700))
            pen.lineTo((540, 0))
            pen.closePath()
        glyphs[name] = pen.glyph()
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics({name: (600, 60) for name in names})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    postscript = family.replace(" ", "") + "-" + style
    builder.setupNameTable({"familyName": family, "styleName": style, "psName": postscript})
    builder.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    builder.setupPost()
    return builder.font


@pytest.fixture
def hebrew_fonts(tmp_path: Path) -> Path:
    folder = tmp_path / "fonts"
    (folder / "nested").mkdir(parents=True)
    build_font("Test Hebrew Sans", HEBREW_LETTERS).save(folder / "nested" / "TestHebrew.ttf")
    (folder / "README.txt").write_text("not a font")
    (folder / "broken.ttf").write_bytes(b"not a font either")
    return folder


def test_the_packaged_families_are_found_and_named_as_typst_names_them() -> None:
    library = font_library()
    assert {"Fjalla One", "Lato", "Roboto", "Source Sans Pro"} <= set(library.families)
    assert library.extra_families == []
    assert library.extra_digest() is None
    assert library.resolve("source  sans PRO") == "Source Sans Pro"


def test_a_script_no_packaged_font_draws_is_refused_pointing_at_font_dirs() -> None:
    with pytest.raises(LayoutError, match=r"which no installed font can draw.*layout\.font_dirs"):
        render(FORMATS["square"], copy=make_copy(headline=HEBREW))


def test_fonts_in_font_dirs_set_what_the_packaged_ones_cannot(hebrew_fonts: Path) -> None:
    library = FontLibrary([hebrew_fonts])
    # Found in a subfolder; a text file and a broken font file are skipped.
    assert library.extra_families == ["Test Hebrew Sans"]
    assert library.covering_family(HEBREW, "Fjalla One", also=["Source Sans Pro"]) == (
        "Test Hebrew Sans"
    )
    typeset = render(FORMATS["letter"], copy=make_copy(headline=HEBREW), font_dirs=[hebrew_fonts])
    assert len(typeset.font_fallbacks) == 1
    assert typeset.font_fallbacks[0].startswith("headline: Fjalla One cannot draw ")
    assert typeset.font_fallbacks[0].endswith("; set in Test Hebrew Sans")
    used = pdf_fonts(typeset.pdf)
    assert "TestHebrewSans-Regular" in used, used
    assert not any("Fjalla" in name for name in used), used


def test_a_family_from_font_dirs_can_be_named_and_a_collection_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "collection"
    folder.mkdir()
    collection = TTCollection()
    collection.fonts = [
        build_font("Test Hebrew Sans", HEBREW_LETTERS),
        build_font("Test Latin Boxes", "abcdefghijklmnopqrstuvwxyz"),
    ]
    collection.save(folder / "Tests.ttc")
    library = FontLibrary([folder])
    assert library.extra_families == ["Test Hebrew Sans", "Test Latin Boxes"]
    assert library.missing_glyphs("shalom", "test latin boxes") == []
    assert library.missing_glyphs("Shalom", "Test Latin Boxes") == ["S"]
    named = render(
        FORMATS["square"],
        copy=make_copy(headline=HEBREW),
        heading_font="test hebrew sans",
        font_dirs=[folder],
    )
    assert named.font_fallbacks == []
    with pytest.raises(LayoutError, match="not installed"):
        FontLibrary([]).resolve("Test Hebrew Sans")


def test_a_font_added_to_a_folder_is_found_by_the_next_lookup(tmp_path: Path) -> None:
    folder = tmp_path / "later"
    folder.mkdir()
    # As if made long ago: the font below changes the folder's time whatever the clock's grain.
    os.utime(folder, ns=(0, 0))
    assert font_library([folder]).extra_families == []
    assert font_library([folder]) is font_library([folder])  # cached while unchanged
    build_font("Test Hebrew Sans", HEBREW_LETTERS).save(folder / "TestHebrew.ttf")
    assert font_library([folder]).extra_families == ["Test Hebrew Sans"]


def test_a_changed_font_folder_releases_the_old_library_and_its_font_book(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "changing"
    folder.mkdir()
    os.utime(folder, ns=(0, 0))
    before = font_library([folder])
    book = before.typst_fonts()
    assert before.typst_fonts() is book  # one font book per library, built once
    old = weakref.ref(before)
    del before, book
    build_font("Test Hebrew Sans", HEBREW_LETTERS).save(folder / "TestHebrew.ttf")
    after = font_library([folder])
    gc.collect()
    # A deploy that serves for days while layout.font_dirs changes keeps only the newest.
    assert old() is None
    assert after.extra_families == ["Test Hebrew Sans"]


def test_libraries_for_many_folder_lists_stay_bounded_keeping_the_latest(tmp_path: Path) -> None:
    libraries = []
    for number in range(3 * CACHED_FOLDER_SETS):
        folder = tmp_path / f"fonts-{number}"
        folder.mkdir()
        libraries.append(weakref.ref(font_library([folder])))
    gc.collect()
    alive = [ref() for ref in libraries if ref() is not None]
    assert len(alive) <= CACHED_FOLDER_SETS
    assert libraries[-1]() is not None
    assert font_library([tmp_path / f"fonts-{3 * CACHED_FOLDER_SETS - 1}"]) is libraries[-1]()


def test_changing_a_font_file_changes_the_digest(hebrew_fonts: Path) -> None:
    font = hebrew_fonts / "nested" / "TestHebrew.ttf"
    before = FontLibrary([hebrew_fonts]).extra_digest()
    assert before is not None
    stat = font.stat()
    os.utime(font, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert FontLibrary([hebrew_fonts]).extra_digest() != before


@pytest.mark.slow
def test_a_run_with_font_dirs_makes_a_hebrew_flyer_and_re_renders_when_a_font_changes(
    prefect_env: str, isolated_env: Path, hebrew_fonts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPERLOCAL_LAYOUT__FONT_DIRS", f'["{hebrew_fonts}"]')
    brief = load_brief(BRIEF_FILE, allowed_dirs=[PROJECT_ROOT / "examples"])
    hebrew = brief.model_copy(update={"event": HEBREW})
    options = {"variants": 1, "formats": ["square"], "assets_from": str(BRIEF_FILE.parent)}
    first = flyer(brief=hebrew, **options)
    record = first.manifest.variants[0].formats[0]
    assert record.font_fallbacks[0].endswith("; set in Test Hebrew Sans")
    assert first.manifest.settings["layout"]["font_dirs"] == [str(hebrew_fonts)]

    assert flyer(brief=hebrew, **options).manifest.computed_steps == 0
    font = hebrew_fonts / "nested" / "TestHebrew.ttf"
    stat = font.stat()
    os.utime(font, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    third = flyer(brief=hebrew, **options).manifest
    assert [s.step for s in third.steps if not s.cached] == ["render_flyer"]


def test_each_text_reads_its_own_way_on_a_flyer_that_reads_the_other_way() -> None:
    assert first_strong_direction("חלה טרייה") == "rtl"
    assert first_strong_direction("خبز طازج") == "rtl"
    assert first_strong_direction("14 Mill Lane") == "ltr"  # digits have no direction
    assert first_strong_direction("12:00 – £5") is None
    # English on a right-to-left flyer becomes a bidi isolate, so "14 Mill Lane." keeps
    # its order; text running the flyer's way, or with no direction, is left alone.
    assert isolated("14 Mill Lane.", "rtl") == "\u206814 Mill Lane.\u2069"
    assert isolated("14 Mill Lane.", "ltr") == "14 Mill Lane."
    assert isolated("חלה", "rtl") == "חלה"
    assert isolated("£5", "rtl") == "£5"


def _qr_side(png: bytes) -> str:
    """Return which half of the page's lower part holds more pure white: the QR code's."""
    with Image.open(io.BytesIO(png)) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    lower = pixels[pixels.shape[0] * 6 // 10 :]
    white = (lower == 255).all(axis=2)
    half = white.shape[1] // 2
    return "left" if white[:, :half].sum() > white[:, half:].sum() else "right"


def test_a_hebrew_headline_mirrors_the_flyer(hebrew_fonts: Path) -> None:
    def render_letter(headline: str) -> ts.TypesetFlyer:
        brief = make_brief(url="https://crumbandco.example/sourdough")
        copy = make_copy(headline=headline)
        return render(FORMATS["letter"], copy=copy, brief=brief, font_dirs=[hebrew_fonts])

    # The QR code sits bottom right on a left-to-right flyer, bottom left on a Hebrew one.
    assert _qr_side(render_letter("Fresh challah every Friday").png) == "right"
    hebrew = render_letter(HEBREW)
    assert _qr_side(hebrew.png) == "left"
    # The English lines are still there, in their own order.
    text = pdf_text(hebrew.pdf)
    assert "Mill Lane" in text


def test_the_brief_language_sets_the_direction_and_typst_language(
    tmp_path: Path, hebrew_fonts: Path
) -> None:
    fmt = FORMATS["letter"]
    url = "https://crumbandco.example/sourdough"
    # An Arabic-language flyer whose headline is an English brand line still reads right
    # to left; a Hebrew headline on a flyer declared English reads left to right.
    arabic = make_brief(url=url, language="ar-EG")
    assert _qr_side(render(fmt, brief=arabic, copy=make_copy(headline="Crumb & Co.")).png) == "left"
    english = make_brief(url=url, language="en")
    hebrew_copy = make_copy(headline=HEBREW)
    assert _qr_side(render(fmt, brief=english, copy=hebrew_copy, font_dirs=[hebrew_fonts]).png) == (
        "right"
    )
    background = gradient_png()
    write_job(
        tmp_path,
        TypesetRequest(
            fmt=fmt,
            copy=make_copy(),
            brief=arabic,
            background_png=background,
            style=style_for(fmt, background),
            heading_font="Fjalla One",
            body_font="Source Sans Pro",
            logo_path=None,
            print_ppi=72,
        ),
    )
    data = json.loads((tmp_path / "data.json").read_text(encoding="utf-8"))
    assert (data["direction"], data["lang"], data["region"]) == ("rtl", "ar", "EG")
