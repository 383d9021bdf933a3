"""Picture bytes: PNGs checked and decoded with Pillow, one error for what is not a picture.

Every step that receives a picture (the image step, the A1111 client, the vision
checks, layout) reads it here, so a truncated file, a decompression bomb or a
JPEG where a PNG was promised is the same ``InvalidImage`` everywhere.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from hyperlocal.errors import InvalidImage

#: What Pillow raises for bytes that are not a readable picture (a bomb included: a
#: header claiming a giant picture is not a picture either).
NOT_A_PICTURE = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    Image.DecompressionBombError,
)


def picture_header(data: bytes, source: str) -> tuple[str | None, tuple[int, int]]:
    """Return a picture's format and size, checked without decoding its pixels.

    ``source`` starts the error (``"the image server sent"``). Raises
    ``InvalidImage`` for bytes that are not a picture.
    """
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.verify()
            return picture.format, picture.size
    except NOT_A_PICTURE as exc:
        raise InvalidImage(f"{source} bytes that are not a picture: {exc}") from None


def check_png(data: bytes, size: tuple[int, int], source: str) -> None:
    """Check that ``data`` is a PNG of ``size`` (width, height) pixels.

    ``source`` starts the error (``"the image backend returned"``). Raises
    ``InvalidImage`` for bytes that are not a picture, not a PNG, or another size.
    """
    found_format, found = picture_header(data, source)
    if found_format != "PNG":
        raise InvalidImage(f"{source} {found_format}, not PNG")
    if found != size:
        raise InvalidImage(f"{source} {found[0]}x{found[1]}, not the requested {size[0]}x{size[1]}")


def png_size(data: bytes) -> tuple[int, int]:
    """Return the width and height of picture bytes; raises ``InvalidImage`` if not a picture."""
    return picture_header(data, "the renderer produced")[1]


def decode_picture(data: bytes, mode: str | None, what: str = "the picture") -> Image.Image:
    """Return picture bytes decoded (pixels loaded), converted to ``mode`` unless it is None.

    For pictures painted or checked here: their size was checked by the image step,
    so Pillow's decompression-bomb warning is silenced (a real bomb still fails).
    Raises ``InvalidImage`` naming ``what`` when the bytes do not decode.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return image.convert(mode) if mode is not None else image.copy()
    except NOT_A_PICTURE as exc:
        raise InvalidImage(
            f"{what} does not decode ({len(data)} bytes): {exc}; paint it again"
        ) from exc
