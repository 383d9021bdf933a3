"""Picture bytes: PNGs checked and decoded with Pillow, one error for what is not a picture.

Every step that receives a picture (the image step, the A1111 client, the vision
checks, layout, a brief's logo) reads it here, so a truncated file, a
decompression bomb or a JPEG where a PNG was promised is the same
``InvalidImage`` everywhere. A picture's size is read from its header and held
to a pixel limit before any pixel is decoded: Pillow's own
``Image.MAX_IMAGE_PIXELS`` is one global for the whole process and only warns
below twice its value (a 0.4 MB PNG of 20000x20000 px decoded for 30 s into 1 GB).
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

from hyperlocal.errors import InvalidImage

#: A logo prints a few centimetres wide, and a whole letter page at 300 dpi is 8.4 MP: 40 MP
#: still takes any scan or camera file up to about 7700x5200 px, while bounding what the
#: renderer decodes (160 MB as RGBA) and how long it takes (a second or two, not 30 s).
MAX_LOGO_PIXELS = 40_000_000
#: The largest picture an image request may ask for (``ImageRequest``: 4096x4096 px). Every
#: background from an image server or model is checked against it before its exact size.
MAX_BACKGROUND_PIXELS = 4096 * 4096

#: What Pillow raises for bytes that are not a readable picture (a bomb included: a
#: header claiming a giant picture is not a picture either).
NOT_A_PICTURE = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    Image.DecompressionBombError,
)


def _megapixels(pixels: int) -> str:
    """Return ``pixels`` in megapixels as people write them (``40``, ``16.8``)."""
    return f"{pixels / 1e6:.1f}".removesuffix(".0")


def read_header(stream: IO[bytes]) -> tuple[str | None, tuple[int, int]]:
    """Return the format and size in a picture's header; no pixel is decoded.

    Pillow refuses to open a picture of more than twice ``Image.MAX_IMAGE_PIXELS``
    before its size can be named, so that refusal falls back on the format's own
    opener, which reads the same header. Raises one of ``NOT_A_PICTURE`` for
    bytes that are not a picture.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(stream) as picture:
                return picture.format, picture.size
        except Image.DecompressionBombError:
            stream.seek(0)
            return _header_past_pillows_limit(stream)


def _header_past_pillows_limit(stream: IO[bytes]) -> tuple[str | None, tuple[int, int]]:
    """Return the format and size of a picture Pillow's ``open`` refused as a bomb."""
    prefix = stream.read(16)
    Image.init()
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        # ``accept`` answers True, False or a warning text (a format it almost matches).
        if accept is not None and accept(prefix) is not True:
            continue
        stream.seek(0)
        try:
            picture = factory(stream, "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
        return picture.format, picture.size
    raise UnidentifiedImageError("cannot identify image file")


def check_pixels(size: tuple[int, int], max_pixels: int, what: str) -> None:
    """Raise ``InvalidImage`` when a picture of ``size`` has more than ``max_pixels``.

    The line reads ``20000x20000 px is more than the 40 MP a logo may have: use a
    smaller picture``, ``what`` naming the picture (``"a logo"``).
    """
    width, height = size
    if width * height > max_pixels:
        raise InvalidImage(
            f"{width}x{height} px is more than the {_megapixels(max_pixels)} MP {what} may "
            "have: use a smaller picture"
        )


def picture_file_header(path: Path) -> tuple[str | None, tuple[int, int]]:
    """Return the format and size of the picture file ``path``, read from its header only.

    Raises ``InvalidImage`` (``not a picture ...``) for a file Pillow does not read
    as a picture, ``OSError`` when the file cannot be opened.
    """
    with path.open("rb") as file:
        try:
            return read_header(file)
        except UnidentifiedImageError:
            # Pillow's message repeats the file object; the caller names the file.
            raise InvalidImage("not a picture: use a PNG, JPEG or SVG file") from None
        except NOT_A_PICTURE as exc:
            raise InvalidImage(
                f"not a readable picture ({exc}): use a PNG, JPEG or SVG file"
            ) from None


def picture_header(
    data: bytes, source: str, max_pixels: int | None = MAX_BACKGROUND_PIXELS
) -> tuple[str | None, tuple[int, int]]:
    """Return a picture's format and size, checked without decoding its pixels.

    ``source`` starts the error (``"the image server sent"``). The size is held
    to ``max_pixels`` (``None``: no limit, for pictures this project made) before
    the file is verified. Raises ``InvalidImage`` for bytes that are not a
    picture or one with too many pixels.
    """
    try:
        found_format, size = read_header(io.BytesIO(data))
    except NOT_A_PICTURE as exc:
        raise InvalidImage(f"{source} bytes that are not a picture: {exc}") from None
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise InvalidImage(
            f"{source} {size[0]}x{size[1]} px, more than the {_megapixels(max_pixels)} MP "
            "a background may have"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as picture:
                picture.verify()
    except NOT_A_PICTURE as exc:
        raise InvalidImage(f"{source} bytes that are not a picture: {exc}") from None
    return found_format, size


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
    # The renderer's own output: its size follows the format and print resolution.
    return picture_header(data, "the renderer produced", max_pixels=None)[1]


def decode_picture(
    data: bytes,
    mode: str | None,
    what: str = "the picture",
    max_pixels: int = MAX_BACKGROUND_PIXELS,
) -> Image.Image:
    """Return picture bytes decoded (pixels loaded), converted to ``mode`` unless it is None.

    For pictures painted or checked here: the header's size is held to
    ``max_pixels`` before any pixel is decoded, so Pillow's decompression-bomb
    warning is silenced. Raises ``InvalidImage`` naming ``what`` when the bytes do
    not decode or hold too many pixels.
    """
    try:
        _, size = read_header(io.BytesIO(data))
    except NOT_A_PICTURE as exc:
        raise InvalidImage(
            f"{what} does not decode ({len(data)} bytes): {exc}; paint it again"
        ) from exc
    if size[0] * size[1] > max_pixels:
        raise InvalidImage(
            f"{what} is {size[0]}x{size[1]} px, more than the {_megapixels(max_pixels)} MP "
            "a picture may have here"
        )
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
