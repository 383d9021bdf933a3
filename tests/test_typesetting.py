"""The layout layer: fonts, measured text colours, QR codes and the Typst flyer template."""

from __future__ import annotations

import io
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from hyperlocal.errors import AssetError, InvalidImage, LayoutError
from hyperlocal.layout import contrast, fonts, qr
from hyperlocal.layout import typesetting as ts
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS, FlyerFormat
from hyperlocal.layout.job import TypesetRequest, type_scale
from hyperlocal.models import BrandKit, Brief, FlyerCopy, TextStyle

LETTER = FORMATS["letter"]
SQUARE = FORMATS["square"]
#: The default (frosted) design's text zones.
LETTER_TEXT = place_design(LETTER, "frosted").text_zone
SQUARE_TEXT = place_design(SQUARE, "frosted").text_zone
PALETTE = ["#1F3A5F", "#F2A541", "#FDF6EC"]


# --------------------------------------------------------------------------- helpers


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def gradient_png(width: int = 192, height: int = 248) -> bytes:
    """A plain diagonal gradient from warm orange to deep blue."""
    y, x = np.mgrid[0:height, 0:width]
    t = (x / width + y / height) / 2
    start, end = np.array([242, 165, 65]), np.array([31, 58, 95])
    pixels = start + (end - start) * t[..., None]
    return png_bytes(Image.fromarray(pixels.astype("uint8")))


def solid_png(colour: str, size: tuple[int, int] = (96, 96)) -> bytes:
    return png_bytes(Image.new("RGB", size, colour))


def half_black_half_white_png(size: tuple[int, int] = (96, 96)) -> bytes:
    image = Image.new("RGB", size, "#FFFFFF")
    image.paste((0, 0, 0), (0, 0, size[0] // 2, size[1]))
    return png_bytes(image)


def make_brief(**changes: object) -> Brief:
    fields: dict[str, object] = {
        "business": "Crumb & Co. Bakery",
        "event": "Sourdough for beginners",
        "date": "Saturday 14 June",
        "time": "10:00–13:00",
        "place": "14 Mill Lane, Hebden Bridge",
        "price": "£45",
        "url": "https://crumbandco.example/sourdough",
        "brand": BrandKit(colors=PALETTE),
    }
    fields.update(changes)
    return Brief.model_validate(fields)


def make_copy(**changes: object) -> FlyerCopy:
    fields: dict[str, object] = {
        "angle": "hands-on",
        "headline": "Bake your first real sourdough",
        "subhead": "A relaxed morning class for complete beginners.",
        "body_points": ["Shape and score your own loaf", "Take home our starter"],
        "when": "Saturday 14 June, 10:00–13:00",
        "where": "14 Mill Lane, Hebden Bridge",
        "price": "£45",
        "call_to_action": "Book your place",
        "fine_print": "Small groups of 8.",
    }
    fields.update(changes)
    return FlyerCopy.model_validate(fields)


def style_for(fmt: FlyerFormat, background: bytes) -> TextStyle:
    return contrast.measure_text_style(
        background, place_design(fmt, "frosted").text_zone, PALETTE, page_aspect=fmt.aspect
    )


def render(
    fmt: FlyerFormat,
    *,
    copy: FlyerCopy | None = None,
    brief: Brief | None = None,
    background: bytes | None = None,
    heading_font: str = "Fjalla One",
    body_font: str = "Source Sans Pro",
    logo_path: Path | None = None,
    print_ppi: int = 72,
    font_dirs: list[Path] | None = None,
) -> ts.TypesetFlyer:
    background = background or gradient_png()
    return ts.typeset_flyer(
        TypesetRequest(
            fmt=fmt,
            copy=copy or make_copy(),
            brief=brief or make_brief(),
            background_png=background,
            style=style_for(fmt, background),
            heading_font=heading_font,
            body_font=body_font,
            logo_path=logo_path,
            print_ppi=print_ppi,
            font_dirs=font_dirs or [],
        )
    )


def pdf_text(pdf: bytes | None) -> str:
    assert pdf is not None
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def squashed(text: str) -> str:
    """The text without any whitespace, so line breaks and word spacing do not matter."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFC", text))


def composite(panel: str, opacity: float, under: str) -> str:
    """The colour a see-through panel makes over a pixel (sRGB blending, as renderers do)."""
    top = np.array([int(panel[i : i + 2], 16) for i in (1, 3, 5)])
    bottom = np.array([int(under[i : i + 2], 16) for i in (1, 3, 5)])
    mixed = np.round(opacity * top + (1 - opacity) * bottom).astype(int)
    return "#" + "".join(f"{c:02X}" for c in mixed)


@pytest.fixture(scope="module")
def logo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("assets") / "logo.png"
    Image.new("RGBA", (120, 80), (242, 165, 65, 255)).save(path)
    return path


@pytest.fixture(scope="module")
def letter_flyer(logo: Path) -> ts.TypesetFlyer:
    return render(LETTER, logo_path=logo, print_ppi=150)


@pytest.fixture(scope="module")
def square_flyer() -> ts.TypesetFlyer:
    return render(SQUARE)


# --------------------------------------------------------------------------- page sizes


def test_letter_flyer_is_a_letter_size_pdf_page_and_a_1275x1650_png_at_150_ppi(
    letter_flyer: ts.TypesetFlyer,
) -> None:
    assert letter_flyer.pdf is not None
    pages = PdfReader(io.BytesIO(letter_flyer.pdf)).pages
    assert len(pages) == 1
    box = pages[0].mediabox
    assert float(box.width) == pytest.approx(LETTER.width_pt, abs=0.01)
    assert float(box.height) == pytest.approx(LETTER.height_pt, abs=0.01)
    assert (letter_flyer.png_width, letter_flyer.png_height) == (1275, 1650)
    assert Image.open(io.BytesIO(letter_flyer.png)).size == (1275, 1650)


def test_square_flyer_is_a_1080x1080_png_without_a_pdf(square_flyer: ts.TypesetFlyer) -> None:
    assert square_flyer.pdf is None
    assert (square_flyer.png_width, square_flyer.png_height) == (1080, 1080)
    assert Image.open(io.BytesIO(square_flyer.png)).size == (1080, 1080)


def test_typeset_flyer_returns_pdf_png_and_pixel_size() -> None:
    background = gradient_png()
    flyer = ts.typeset_flyer(
        TypesetRequest(
            fmt=LETTER,
            copy=make_copy(),
            brief=make_brief(),
            background_png=background,
            style=style_for(LETTER, background),
            heading_font="Fjalla One",
            body_font="Source Sans Pro",
            logo_path=None,
            print_ppi=72,
            template=ts.DEFAULT_TEMPLATE,
        )
    )
    assert flyer.pdf is not None
    assert flyer.pdf.startswith(b"%PDF")
    assert Image.open(io.BytesIO(flyer.png)).size == (flyer.png_width, flyer.png_height)
    assert (flyer.png_width, flyer.png_height) == (612, 792)


def test_fitting_reports_sizes_within_the_format_limits(
    letter_flyer: ts.TypesetFlyer, square_flyer: ts.TypesetFlyer
) -> None:
    for fmt, flyer in ((LETTER, letter_flyer), (SQUARE, square_flyer)):
        scale = type_scale(fmt)
        sizes = flyer.font_sizes
        assert scale["headline_min"] - 0.01 <= sizes["headline"] <= scale["headline_max"] + 0.01
        assert scale["body_min"] - 0.01 <= sizes["body"] <= scale["body_max"] + 0.01
        assert sizes["headline"] > 2 * sizes["body"]
        assert scale["business_min"] - 0.01 <= sizes["business"] <= scale["business_max"] + 0.01


# --------------------------------------------------------------------------- text is data


def test_hostile_text_is_printed_literally_and_never_run_as_markup() -> None:
    markup = "# [ ] * $ _ < @ \\ `"
    reads = '#read("/etc/passwd")'
    panics = '#panic("x")'
    accents = "Crème brûlée, naïve café — “Zoë’s” Ærø"
    brief = make_brief(business=f"{panics} Boulangerie Éloïse")
    copy = make_copy(
        headline=f"{markup} {accents}",
        subhead=f"{reads} and {panics} are words here",
        body_points=[reads, f"{markup} <b>bold?</b> $x^2$ @label", accents],
        fine_print='#let x = 1 #x #image("/bg.png") #include "/data.json"',
    )
    flyer = render(LETTER, brief=brief, copy=copy)
    text = squashed(pdf_text(flyer.pdf))
    for run in [brief.business, *copy.text_runs()]:
        assert squashed(run) in text, run
    # Nothing was read: not /etc/passwd, not the job's own data file.
    assert "root:" not in text
    assert "headline_max" not in text


def test_an_emoji_no_installed_font_can_draw_is_refused_naming_the_character() -> None:
    with pytest.raises(
        LayoutError, match=r"the headline contains '🥖' \(U\+1F956\), which no installed font"
    ):
        render(SQUARE, copy=make_copy(headline="Fresh bread 🥖 every morning"))
    assert fonts.font_library().missing_glyphs("Crème brûlée £45 – “ok”", "Source Sans Pro") == []
    assert fonts.font_library().missing_glyphs("bread 🥖", "Lato") == ["🥖"]
    assert fonts.font_library().undrawable("Łódź 🥖 Пекарня 中") == ["🥖", "中"]


def pdf_fonts(pdf: bytes | None) -> set[str]:
    """Return the names of the fonts a PDF embeds (subset prefixes dropped)."""
    assert pdf is not None
    names: set[str] = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            names.add(str(font.get_object()["/BaseFont"]).split("+")[-1])
    return names


@pytest.mark.parametrize(
    ("headline", "missing"),
    [
        ("Świeży chleb z Łodzi", "'Ś', 'ż'"),  # Polish
        ("Čerstvý chléb každé ráno", "'Č'"),  # Czech
        ("Свежий хлеб каждый день", "'С', 'в', 'е', 'ж', 'и'"),  # Russian
        ("Bánh mì nóng hổi mỗi sáng", "'ổ', 'ỗ'"),  # Vietnamese
    ],
)
def test_a_headline_the_heading_font_cannot_draw_is_set_whole_in_the_body_font(
    headline: str, missing: str
) -> None:
    flyer = render(LETTER, copy=make_copy(headline=headline))
    assert flyer.font_fallbacks == [
        f"headline: Fjalla One cannot draw {missing}; set in Source Sans Pro"
    ]
    assert squashed(headline) in squashed(pdf_text(flyer.pdf))
    # One family for the whole headline: Fjalla One is not in the PDF at all.
    used = pdf_fonts(flyer.pdf)
    assert not any("Fjalla" in name for name in used), used
    assert any("SourceSans" in name for name in used), used


def test_body_text_the_body_font_cannot_draw_falls_back_past_the_heading_font() -> None:
    # Lato cannot draw Romanian ș/ț and neither can the heading font: Roboto can.
    copy = make_copy(subhead="Pâine proaspătă în fiecare dimineață, ștrudel și țuică")
    flyer = render(LETTER, copy=copy, body_font="Lato")
    assert flyer.font_fallbacks == ["body text: Lato cannot draw 'ă', 'ț', 'ș'; set in Roboto"]
    used = pdf_fonts(flyer.pdf)
    assert any("Roboto" in name for name in used), used
    assert not any("Lato" in name for name in used), used
    assert squashed(copy.subhead) in squashed(pdf_text(flyer.pdf))


def test_text_every_chosen_font_draws_keeps_the_chosen_fonts() -> None:
    flyer = render(SQUARE, copy=make_copy(headline="Crème brûlée night"))
    assert flyer.font_fallbacks == []


# --------------------------------------------------------------------------- fitting


def test_a_headline_word_too_long_for_the_page_is_refused_with_a_clear_message() -> None:
    # A real German word of 63 letters: no line can hold it at the smallest headline size.
    headline = "Das Rindfleischetikettierungsüberwachungsaufgabenübertragungsgesetz"
    with pytest.raises(LayoutError) as caught:
        render(LETTER, copy=make_copy(headline=headline))
    message = str(caught.value)
    assert "headline does not fit the letter format" in message
    assert "shorten it" in message
    assert " pt" in message
    assert "\n" not in message


def test_copy_too_long_for_the_square_panel_is_refused_naming_what_to_shorten() -> None:
    copy = make_copy(
        headline="Spring seed swap: bring what you saved, take what you will grow",
        subhead="Bring spare seeds, cuttings and stories. Take home something new to grow, "
        "and meet the growers of the valley over tea and cake.",
        body_points=[
            "Hundreds of heritage vegetable, herb and flower varieties, all free to swap",
            "Expert table: ask our growers anything about sowing, saving and storing seeds",
            "Children's corner with seed-bomb making, planting pots and a scavenger hunt",
            "Tea, coffee and home-made cake all afternoon, proceeds to the hall roof fund",
        ],
        when="Sunday 23 March 2025, from 11:00 in the morning until 4:00 in the afternoon",
        where="St Michael's Church Hall, 1 Long Causeway Road, Upper Hebden, West Yorkshire",
        price="Free entry, donations welcome",
        call_to_action="Bring seeds, take seeds, share the growing",
        fine_print="Please label your seeds with variety and year. No invasive species. The "
        "hall is step-free with an accessible toilet. Dogs on leads welcome in the garden.",
    )
    with pytest.raises(LayoutError, match=r"does not fit the square panel.*shorten the subhead"):
        render(SQUARE, copy=copy, brief=make_brief(place=copy.where))


# --------------------------------------------------------------------------- fonts


def test_installed_fonts_are_the_packaged_families_with_their_folders() -> None:
    families = fonts.font_library().families
    assert {"Fjalla One", "Lato", "Roboto", "Source Sans Pro"} <= set(families)
    assert all(face.path.is_file() for faces in families.values() for face in faces)


def test_font_names_match_whatever_their_case_and_spacing() -> None:
    assert fonts.font_library().resolve("source  sans PRO") == "Source Sans Pro"
    assert fonts.font_library().resolve("FJALLA ONE") == "Fjalla One"


def test_unknown_font_is_refused_naming_the_installed_fonts() -> None:
    with pytest.raises(LayoutError, match=r"Comic Sans MS.*installed fonts: .*Fjalla One"):
        fonts.font_library().resolve("Comic Sans MS")
    with pytest.raises(LayoutError, match=r"Papyrus.*Source Sans Pro"):
        render(SQUARE, body_font="Papyrus")


# --------------------------------------------------------------------------- colour


def test_wcag_contrast_of_black_on_white_is_21_and_of_a_colour_on_itself_is_1() -> None:
    assert contrast.contrast_ratio("#000000", "#FFFFFF") == pytest.approx(21.0)
    assert contrast.contrast_ratio("#1F3A5F", "#1f3a5f") == pytest.approx(1.0)
    assert contrast.relative_luminance("#FFF") == pytest.approx(1.0)
    assert contrast.relative_luminance("#808080") == pytest.approx(0.2158, abs=1e-4)


@pytest.mark.parametrize(
    "background",
    [solid_png("#000000"), solid_png("#FFFFFF"), half_black_half_white_png()],
    ids=["black", "white", "half-black-half-white"],
)
def test_panel_text_reaches_wcag_aa_on_the_worst_pixel_of_the_picture(background: bytes) -> None:
    style = contrast.measure_text_style(background, SQUARE_TEXT, PALETTE)
    assert style.contrast >= 4.5
    # Check the claim independently: the text on the panel over pure black and pure white.
    for under in ("#000000", "#FFFFFF"):
        mixed = composite(style.panel_color, style.panel_opacity, under)
        assert contrast.contrast_ratio(style.text_color, mixed) >= 4.5
    assert contrast.contrast_ratio(style.accent_text_color, style.accent_color) >= 4.5


def test_accent_stands_out_from_the_panel_or_falls_back_to_the_text_colour() -> None:
    style = contrast.measure_text_style(half_black_half_white_png(), LETTER_TEXT, PALETTE)
    for under in ("#000000", "#FFFFFF"):
        mixed = composite(style.panel_color, style.panel_opacity, under)
        assert contrast.contrast_ratio(style.accent_color, mixed) >= 3.0
    # A palette whose only colour is the panel itself leaves nothing to stand out with.
    grey = contrast.measure_text_style(solid_png("#000000"), LETTER_TEXT, ["#000000"])
    assert grey.accent_color == grey.text_color


def test_a_brand_accent_too_pale_for_the_panel_is_deepened_not_dropped() -> None:
    style = contrast.measure_text_style(solid_png("#FFFFFF"), SQUARE_TEXT, ["#F2A541"])
    assert style.accent_color not in ("#F2A541", style.text_color)
    mixed = composite(style.panel_color, style.panel_opacity, "#FFFFFF")
    assert contrast.contrast_ratio(style.accent_color, mixed) >= 3.0


def test_dark_pictures_get_light_text_and_light_pictures_dark_text() -> None:
    on_black = contrast.measure_text_style(solid_png("#000000"), SQUARE_TEXT, PALETTE)
    on_white = contrast.measure_text_style(solid_png("#FFFFFF"), SQUARE_TEXT, PALETTE)
    assert on_black.text_color == contrast.WHITE
    assert on_white.text_color == contrast.INK


def test_a_background_that_is_not_a_picture_is_refused() -> None:
    with pytest.raises(InvalidImage):
        contrast.measure_text_style(b"not a png", SQUARE_TEXT, PALETTE)


# --------------------------------------------------------------------------- QR code


@pytest.mark.parametrize("url", ["https://crumbandco.example/sourdough", "http://a.example"])
def test_qr_code_is_a_black_on_white_svg_for_http_links(url: str) -> None:
    svg = qr.qr_svg(url)
    assert svg.lstrip().startswith("<svg")
    assert 'stroke="#000"' in svg
    assert 'fill="#fff"' in svg


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "javascript:alert(1)",
        "mailto:hi@example.com",
        "example.com",
        "https://",
    ],
)
def test_qr_code_is_refused_for_links_that_are_not_http(url: str) -> None:
    with pytest.raises(LayoutError, match="http"):
        qr.qr_svg(url)


def test_a_flyer_shows_its_link_and_qr_code_only_when_the_brief_has_a_url() -> None:
    dark = solid_png("#000000")
    with_link = render(LETTER, background=dark)
    without = render(LETTER, background=dark, brief=make_brief(url=None))
    assert "crumbandco.example/sourdough" in pdf_text(with_link.pdf)
    assert "crumbandco.example" not in pdf_text(without.pdf)

    # The QR code's white backing sits in the panel's bottom-right corner.
    def corner_pixel(flyer: ts.TypesetFlyer) -> tuple[int, ...]:
        zone = LETTER_TEXT
        inset = type_scale(LETTER)["padding"] + 10
        x = (zone.x + zone.w) * LETTER.width_pt - inset
        y = (zone.y + zone.h) * LETTER.height_pt - inset
        return Image.open(io.BytesIO(flyer.png)).convert("RGB").getpixel((round(x), round(y)))

    assert corner_pixel(with_link) == (255, 255, 255)
    assert corner_pixel(without) != (255, 255, 255)


# --------------------------------------------------------------------------- assets and cache


def test_a_missing_logo_file_is_refused_as_an_asset_error(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="logo"):
        render(SQUARE, logo_path=tmp_path / "nowhere.png")


def test_template_digest_changes_when_the_template_changes(tmp_path: Path) -> None:
    template = tmp_path / "flyer.typ"
    template.write_bytes(ts.DEFAULT_TEMPLATE.read_bytes())
    before = ts.template_digest(template)
    assert before == ts.template_digest(template)
    template.write_text(template.read_text() + "\n// changed\n")
    assert ts.template_digest(template) != before
