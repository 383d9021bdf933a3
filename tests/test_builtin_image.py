"""The builtin painter: exact, reproducible, on-brand backgrounds with a calm text zone."""

from __future__ import annotations

import colorsys
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

import backends.builtin_image as builtin_image
import backends.builtin_painter as builtin_painter
from backends.base import ImageBackend, ImageRequest
from backends.builtin_image import STYLES, BuiltinPainter, Style, choose_style, painter_sources
from backends.source_revision import sources_revision
from hyperlocal.errors import ConfigurationError
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS, Zone

LETTER_ZONE = place_design(FORMATS["letter"], "frosted").text_zone
SQUARE_ZONE = place_design(FORMATS["square"], "frosted").text_zone
BRAND = ["#1F3A5F", "#F2A541", "#FDF6EC"]


def make_request(
    seed: int = 1,
    width: int = 320,
    height: int = 416,
    palette: list[str] | None = None,
    zone: Zone = LETTER_ZONE,
    prompt: str = "abstract poster background",
) -> ImageRequest:
    from hyperlocal.models import ImagePrompt, PromptPhrase, PromptSyntax
    from hyperlocal.prompts.clip_tokens import clip_counter
    from hyperlocal.prompts.fitting import fit_image_prompt

    fitted = fit_image_prompt(
        ImagePrompt(
            phrases=[PromptPhrase(text=prompt, role="subject", priority=100)],
            negative=[PromptPhrase(text="text, letters, watermark", role="quality", priority=90)],
        ),
        syntax=PromptSyntax(),
        counters=[clip_counter()],
        zone=zone.describe(),
    )
    return ImageRequest(
        prompt=fitted,
        width=width,
        height=height,
        seed=seed,
        attempt=1,
        steps=1,
        cfg_scale=0.0,
        palette=palette or BRAND,
        text_zone=zone,
    )


def seed_for(style: Style, start: int = 0) -> int:
    return next(seed for seed in range(start, start + 500) if choose_style(seed) == style)


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def luminance(png: bytes, reduce: int = 1) -> NDArray[np.float32]:
    image = decode(png).convert("L")
    if reduce > 1:
        size = (image.width // reduce, image.height // reduce)
        image = image.resize(size, Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32)


def test_painter_is_an_image_backend_that_names_itself_and_is_always_healthy() -> None:
    painter = BuiltinPainter()
    assert isinstance(painter, ImageBackend)
    identity = painter.identity
    assert (identity.role, identity.kind, identity.model) == (
        "image",
        "builtin",
        "procedural-painter",
    )
    health = painter.health()
    assert health.ok
    assert (health.role, health.kind) == ("image", "builtin")


def test_a_change_to_the_painter_source_changes_its_revision_so_caches_refresh() -> None:
    sources = [path.read_bytes() for path in painter_sources()]
    assert BuiltinPainter().identity.revision == sources_revision(sources)


def test_the_revision_covers_every_module_that_decides_the_pixels() -> None:
    files = painter_sources()
    assert len(set(files)) == len(files)
    package = Path(builtin_painter.__file__).parent
    assert Path(builtin_image.__file__) in files
    assert set(package.glob("*.py")) <= set(files)
    assert {"bokeh.py", "waves.py", "geometric.py", "colour.py"} <= {path.name for path in files}
    # Every painter module that actually ran while painting is among them.
    BuiltinPainter().generate(make_request(seed=2))
    loaded = {
        Path(module.__file__ or "")
        for name, module in list(sys.modules.items())
        if name == "backends.builtin_image" or name.startswith("backends.builtin_painter")
    }
    assert loaded <= set(files)


@pytest.mark.parametrize(
    "edited", range(len(painter_sources())), ids=[p.name for p in painter_sources()]
)
def test_an_edit_to_any_one_painter_module_changes_the_revision(edited: int) -> None:
    sources = [path.read_bytes() for path in painter_sources()]
    changed = [
        source + b"\n# one more line\n" if index == edited else source
        for index, source in enumerate(sources)
    ]
    assert sources_revision(changed) != sources_revision(sources)


def test_moving_code_from_one_painter_module_to_the_next_changes_the_revision() -> None:
    assert sources_revision([b"ab", b"c"]) != sources_revision([b"a", b"bc"])


@pytest.mark.parametrize(("width", "height"), [(896, 1152), (832, 1216), (300, 200), (64, 64)])
def test_picture_is_an_rgb_png_of_exactly_the_requested_size(width: int, height: int) -> None:
    request = make_request(seed=3, width=width, height=height)
    picture = BuiltinPainter().generate(request)
    assert picture.png.startswith(b"\x89PNG\r\n\x1a\n")
    image = decode(picture.png)
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (width, height))
    assert (picture.width, picture.height, picture.seed, picture.attempt) == (width, height, 3, 1)
    assert picture.backend == BuiltinPainter().identity


def test_the_same_request_paints_byte_identical_pictures() -> None:
    request = make_request(seed=42)
    assert BuiltinPainter().generate(request).png == BuiltinPainter().generate(request).png


def test_another_seed_paints_a_visibly_different_picture() -> None:
    painter = BuiltinPainter()
    first = luminance(painter.generate(make_request(seed=42)).png)
    second = luminance(painter.generate(make_request(seed=43)).png)
    assert float(np.mean(np.abs(first - second))) > 5.0


def test_painting_does_not_touch_global_random_state() -> None:
    np.random.seed(0)
    expected = np.random.random()
    np.random.seed(0)
    BuiltinPainter().generate(make_request(seed=5))
    assert np.random.random() == expected


def test_every_style_is_reachable_from_the_seed_alone() -> None:
    assert {choose_style(seed) for seed in range(40)} == set(STYLES)


def test_words_in_the_prompt_nudge_the_style_without_forcing_it() -> None:
    styles = [choose_style(seed, "bold geometric confetti shapes") for seed in range(90)]
    assert styles.count("geometric") > 45
    assert len(set(styles)) > 1


def test_only_whole_words_nudge_the_style() -> None:
    plain = [choose_style(seed, "a summer party") for seed in range(60)]
    assert [choose_style(seed, "a summer season party") for seed in range(60)] == plain
    assert [choose_style(seed, "ocean waves") for seed in range(60)] != plain


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("zone", [LETTER_ZONE, SQUARE_ZONE], ids=["letter", "square"])
def test_text_zone_is_calm_and_evenly_lit_while_the_rest_has_structure(
    style: Style, zone: Zone
) -> None:
    for seed in (seed_for(style), seed_for(style, start=200)):
        png = BuiltinPainter().generate(make_request(seed=seed, zone=zone)).png
        # Reduce first, so film grain (wanted everywhere) does not count as structure.
        grey = luminance(png, reduce=4)
        energy = np.abs(np.diff(grey, axis=1))[:-1, :] + np.abs(np.diff(grey, axis=0))[:, :-1]
        left, top, right, bottom = zone.pixels(grey.shape[1], grey.shape[0])
        inside = np.zeros(energy.shape, dtype=bool)
        inside[top : bottom - 1, left : right - 1] = True
        assert energy[inside].mean() < 0.5 * energy[~inside].mean()
        assert grey[top:bottom, left:right].std() < 8.0


@pytest.mark.parametrize("palette", [["#E63946"], ["#2A9D8F"], ["#3A86FF"], ["#F2A541"]])
def test_the_brand_colour_dominates_the_picture(palette: list[str]) -> None:
    brand = tuple(int(palette[0][i : i + 2], 16) / 255 for i in (1, 3, 5))
    brand_hue = colorsys.rgb_to_hsv(*brand)[0] * 360
    for seed in range(4):
        request = make_request(seed=seed, width=192, height=256, palette=palette)
        png = BuiltinPainter().generate(request).png
        pixels = np.asarray(decode(png), dtype=np.float64) / 255
        mean = pixels.reshape(-1, 3).mean(axis=0)
        hue = colorsys.rgb_to_hsv(*mean)[0] * 360
        assert min(abs(hue - brand_hue), 360 - abs(hue - brand_hue)) < 20


@pytest.mark.parametrize("palette", [["#000000"], ["#FFFFFF", "#FFF8E7"]])
def test_black_or_white_brands_still_get_a_picture_that_is_not_clipped(palette: list[str]) -> None:
    for style in STYLES:
        png = BuiltinPainter().generate(make_request(seed=seed_for(style), palette=palette)).png
        grey = luminance(png)
        assert float(np.mean((grey <= 3) | (grey >= 252))) < 0.01
        assert grey.std() > 4.0


def test_a_palette_entry_that_is_not_a_hex_colour_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not a hex colour"):
        BuiltinPainter().generate(make_request(palette=["#1F3A5F", "ochre"]))


def test_short_hex_colours_are_understood() -> None:
    short = BuiltinPainter().generate(make_request(seed=9, palette=["#fa0"])).png
    long = BuiltinPainter().generate(make_request(seed=9, palette=["#FFAA00"])).png
    assert short == long
