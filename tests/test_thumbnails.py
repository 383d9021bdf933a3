"""Thumbnails of flyers: sizes, colour mode, parallel decoding, unreadable pictures."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from hyperlocal.layout.thumbnails import jpeg_data_uri, png_thumbnails


def _png(width: int, height: int, mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), "#2a6f97").save(out, format="PNG")
    return out.getvalue()


def test_every_picture_gets_a_thumbnail_of_the_height_with_its_aspect_kept() -> None:
    pngs = {
        (1, "letter"): _png(1700, 2200),
        (1, "square"): _png(1080, 1080, "RGB"),
        (2, "story"): _png(1080, 1920, "P"),
    }
    thumbs = png_thumbnails(pngs, 520)
    assert list(thumbs) == list(pngs)
    assert {key: t.size for key, t in thumbs.items()} == {
        (1, "letter"): (402, 520),
        (1, "square"): (520, 520),
        (2, "story"): (292, 520),
    }
    assert {t.mode for t in thumbs.values()} == {"RGB"}
    # The colour survives the reduction.
    assert thumbs[(1, "letter")].getpixel((200, 260)) == (0x2A, 0x6F, 0x97)


def test_an_unreadable_picture_is_an_os_error() -> None:
    with pytest.raises(OSError, match="cannot identify image file"):
        png_thumbnails({"good": _png(40, 40), "bad": b"not a picture"}, 20)


def test_a_data_uri_is_a_jpeg_of_the_height_never_enlarged() -> None:
    big = Image.new("RGB", (1080, 1350), "white")
    small = Image.new("RGBA", (100, 120), "white")
    for picture, size in ((big, (192, 240)), (small, (100, 120))):
        uri = jpeg_data_uri(picture, 240)
        header, encoded = uri.split(",", 1)
        assert header == "data:image/jpeg;base64"
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as jpeg:
            assert (jpeg.format, jpeg.size) == ("JPEG", size)
