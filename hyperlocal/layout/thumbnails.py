"""Small copies of flyers: for the contact sheet and the run's artifacts.

Decoding a print-size PNG is most of what a thumbnail costs (70 ms for a
1700 x 2200 letter flyer here), and a run needs two sizes of every flyer. So
each flyer is decoded once, in threads (Pillow lets go of the GIL while it
decodes and resamples), and the smaller size is made from the larger copy.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from PIL import Image

K = TypeVar("K", bound=Hashable)

#: Height of the flyer previews shown in the run's markdown artifact.
PREVIEW_HEIGHT = 240
#: JPEG quality of previews: photo-like pictures, a fraction of a PNG's size.
JPEG_QUALITY = 80


def shrink(picture: Image.Image, height: int) -> Image.Image:
    """Return an RGB copy of ``picture`` ``height`` pixels tall, its aspect kept.

    Raises ``OSError`` when the picture's data cannot be decoded.
    """
    width = max(1, round(picture.width * height / picture.height))
    # reducing_gap: a cheap box reduction first, Lanczos over the last factor of
    # three, which looks the same at thumbnail size and takes less time.
    return picture.convert("RGB").resize(
        (width, height), Image.Resampling.LANCZOS, reducing_gap=3.0
    )


def png_thumbnail(png: bytes, height: int) -> Image.Image:
    """Return an RGB thumbnail ``height`` pixels tall of a picture file's bytes.

    Raises ``OSError`` when the bytes are not a picture Pillow can read.
    """
    with Image.open(io.BytesIO(png)) as picture:
        return shrink(picture, height)


def png_thumbnails(pngs: Mapping[K, bytes], height: int) -> dict[K, Image.Image]:
    """Return a thumbnail ``height`` pixels tall of every picture, decoded in parallel.

    Raises ``OSError`` for the first picture that cannot be read.
    """
    keys = list(pngs)
    if len(keys) <= 1:
        return {key: png_thumbnail(pngs[key], height) for key in keys}
    workers = min(len(keys), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumbnail") as pool:
        pictures = pool.map(lambda key: png_thumbnail(pngs[key], height), keys)
        return dict(zip(keys, pictures, strict=True))


def jpeg_data_uri(picture: Image.Image, height: int) -> str:
    """Return ``picture`` shrunk to ``height`` pixels (never enlarged) as a JPEG ``data:`` URI."""
    small = shrink(picture, height) if picture.height > height else picture.convert("RGB")
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")
