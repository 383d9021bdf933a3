"""The heuristic vision check: painter pictures pass, unusable pictures fail with clear reasons."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

import backends.heuristic_vision as heuristic_vision
from backends.base import CheckRequest, VisionBackend
from backends.builtin_image import STYLES, choose_style, paint_png
from backends.heuristic_vision import HeuristicVision
from hyperlocal.errors import InvalidImage
from hyperlocal.layout.designs import DESIGNS, place_design
from hyperlocal.layout.formats import FORMATS, Zone
from hyperlocal.models import BackendIdentity, GeneratedImage, QCReport

LETTER_ZONE = Zone(x=0.06, y=0.46, w=0.88, h=0.50)
SQUARE_ZONE = Zone(x=0.06, y=0.38, w=0.88, h=0.57)
BRAND = ["#1F3A5F", "#F2A541", "#FDF6EC"]
PALETTES = [
    BRAND,
    ["#000000"],
    ["#FFFFFF", "#FFF8E7"],
    ["#E63946"],
    ["#2A9D8F", "#E9C46A", "#264653"],
    ["#808080"],
    ["#FF0000", "#00FF00", "#0000FF", "#FFFF00", "#00FFFF"],
]
SIZES = [(832, 1088), (416, 544), (512, 512), (320, 416), (448, 448)]
PAINTER = BackendIdentity(role="image", kind="builtin", model="procedural-painter")


def png_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # Painted pictures carry grain, which makes zlib's heavier levels slow for nothing here.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def painted_png(
    seed: int,
    width: int = 832,
    height: int = 1088,
    palette: list[str] | None = None,
    zone: Zone = LETTER_ZONE,
) -> bytes:
    return paint_png(width, height, seed, palette or BRAND, zone)


def painted(seed: int, width: int = 832, height: int = 1088) -> Image.Image:
    """Return a painter picture as an image to draw on."""
    return Image.open(io.BytesIO(painted_png(seed, width, height))).convert("RGB")


def check(
    picture: Image.Image | bytes,
    zone: Zone = LETTER_ZONE,
    min_score: float = 5.0,
    vision: HeuristicVision | None = None,
) -> QCReport:
    png = picture if isinstance(picture, bytes) else png_of(picture)
    # The checker decodes the bytes itself; the declared size is only bookkeeping.
    width, height = (1, 1) if isinstance(picture, bytes) else picture.size
    image = GeneratedImage(png=png, width=width, height=height, seed=1, attempt=1, backend=PAINTER)
    request = CheckRequest(image=image, text_zone=zone, subject="a flyer", min_score=min_score)
    return (vision or HeuristicVision()).check(request)


def failed(report: QCReport) -> set[str]:
    return {item.name for item in report.checks if not item.passed}


def seed_for(style: str) -> int:
    return next(seed for seed in range(500) if choose_style(seed) == style)


def test_vision_is_a_vision_backend_whose_identity_carries_its_thresholds() -> None:
    vision = HeuristicVision(max_zone_edges=0.01)
    assert isinstance(vision, VisionBackend)
    identity = vision.identity
    assert (identity.role, identity.kind, identity.model) == (
        "vision",
        "heuristic",
        "pixel-statistics",
    )
    source = Path(heuristic_vision.__file__).read_bytes()
    assert identity.revision == hashlib.sha256(source).hexdigest()[:12]
    assert identity.params["max_zone_edges"] == 0.01
    assert identity != HeuristicVision().identity
    assert vision.health().ok


def test_thresholds_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="max_highlights"):
        HeuristicVision(max_highlights=1.5)
    with pytest.raises(ValueError, match="min_size"):
        HeuristicVision(min_size=0)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("palette", [BRAND, ["#000000"], ["#FFFFFF", "#FFF8E7"]])
@pytest.mark.parametrize("zone", [LETTER_ZONE, SQUARE_ZONE], ids=["letter", "square"])
def test_every_painter_style_passes_with_dark_light_and_brand_palettes(
    style: str, palette: list[str], zone: Zone
) -> None:
    report = check(painted_png(seed_for(style), 320, 416, palette, zone), zone, min_score=7.0)
    assert report.passed, report.reasons
    assert report.reasons == []
    assert report.score >= 9.0


@settings(max_examples=8, deadline=None, derandomize=True)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    palette=st.sampled_from(PALETTES),
    zone=st.sampled_from([LETTER_ZONE, SQUARE_ZONE]),
    size=st.sampled_from(SIZES),
)
def test_painter_pictures_pass_for_any_seed_palette_zone_and_size(
    seed: int, palette: list[str], zone: Zone, size: tuple[int, int]
) -> None:
    report = check(painted_png(seed, *size, palette, zone), zone, min_score=7.0)
    assert report.passed, report.reasons


CALM_ZONES = {
    f"{name}-{design}": place_design(fmt, design).calm_zone
    for name, fmt in FORMATS.items()
    for design in DESIGNS
}


@pytest.mark.parametrize("zone", CALM_ZONES.values(), ids=CALM_ZONES.keys())
def test_every_format_and_designs_calm_zone_passes_with_painter_pictures(zone: Zone) -> None:
    for style in STYLES:
        report = check(painted_png(seed_for(style), 320, 416, BRAND, zone), zone, min_score=7.0)
        assert report.passed, (style, report.reasons)


def test_a_blank_picture_fails_as_blank_and_without_detail() -> None:
    report = check(Image.new("RGB", (832, 1088), "#3A6EA5"))
    assert not report.passed
    assert {"contrast", "detail"} <= failed(report)
    assert any("blank" in reason for reason in report.reasons)


def test_random_noise_fails_because_the_text_zone_is_busy() -> None:
    noise = np.random.default_rng(7).integers(0, 256, (1088, 832, 3), dtype=np.uint8)
    report = check(Image.fromarray(noise))
    assert not report.passed
    assert {"zone_edges", "zone_ratio"} <= failed(report)
    assert any("text zone is busy" in reason for reason in report.reasons)


def test_lettering_drawn_into_the_text_zone_fails_a_picture_that_passed_without_it() -> None:
    picture = painted(seed_for("geometric"))
    assert check(picture).passed
    font = ImageFont.load_default(size=60)
    draw = ImageDraw.Draw(picture)
    draw.text((90, 560), "SUMMER FAIR", fill="black", font=font)
    draw.text((90, 660), "Sat 12 July", fill="black", font=font)
    report = check(picture)
    assert not report.passed
    assert "zone_edges" in failed(report)


def test_a_mostly_white_picture_fails_as_clipped_highlights() -> None:
    picture = painted(seed_for("bokeh"), 416, 544)
    ImageDraw.Draw(picture).rectangle((0, 125, 416, 544), fill="white")
    report = check(picture)
    assert not report.passed
    assert "highlights" in failed(report)
    assert any("clipped" in reason for reason in report.reasons)


def test_a_mostly_black_picture_fails_as_clipped_shadows() -> None:
    picture = painted(seed_for("waves"), 416, 544)
    ImageDraw.Draw(picture).rectangle((0, 125, 416, 544), fill="black")
    assert "shadows" in failed(check(picture))


def test_a_tiny_picture_fails_as_too_small_with_the_lowest_score() -> None:
    report = check(Image.new("RGB", (1, 1), "red"))
    assert not report.passed
    assert [item.name for item in report.checks] == ["size"]
    assert report.score == 1.0
    assert "too small" in report.reasons[0]


@pytest.mark.parametrize(
    "data",
    [b"", b"not a picture at all", png_of(Image.new("RGB", (64, 64), "red"))[:60]],
    ids=["empty", "text", "truncated-png"],
)
def test_bytes_that_do_not_decode_raise_invalid_image(data: bytes) -> None:
    with pytest.raises(InvalidImage, match="does not decode"):
        check(data)


def test_each_check_reports_its_value_limit_and_the_failures_become_the_reasons() -> None:
    report = check(Image.new("RGB", (640, 640), "#808080"))
    names = [item.name for item in report.checks]
    assert names == [
        "size",
        "contrast",
        "highlights",
        "shadows",
        "detail",
        "zone_edges",
        "zone_ratio",
    ]
    assert report.reasons == [item.detail for item in report.checks if not item.passed]
    contrast = next(item for item in report.checks if item.name == "contrast")
    assert (contrast.value, contrast.limit) == (0.0, HeuristicVision().min_contrast)


def test_a_picture_that_only_scrapes_past_a_limit_scores_lower_and_fails_a_strict_minimum() -> None:
    picture = painted_png(seed_for("waves"), 416, 544)
    relaxed = check(picture)
    contrast = next(item.value for item in relaxed.checks if item.name == "contrast")
    strict = HeuristicVision(min_contrast=contrast * 0.95)
    scraping = check(picture, min_score=8.0, vision=strict)
    assert all(item.passed for item in scraping.checks)
    assert scraping.score < relaxed.score
    assert not scraping.passed
    assert any("below the minimum" in reason for reason in scraping.reasons)
