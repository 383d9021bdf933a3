"""QR codes for a brief's link: SVG from segno, only for http(s) links."""

from __future__ import annotations

import functools
import io
import unicodedata
from urllib.parse import urlsplit

import segno

from hyperlocal.errors import LayoutError


@functools.lru_cache(maxsize=64)
def qr_svg(url: str) -> str:
    """Return an SVG QR code for ``url``: black modules on white, 4-module quiet zone.

    Error correction is at least M (segno raises it when that costs no size).
    Remembered for the last few links, since every format and variant of a brief
    prints the same one and choosing the mask is most of the work. Raises
    ``LayoutError`` unless ``url`` is an http(s) link with a host and no spaces.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise LayoutError(f"QR codes are made only for http(s) links, not {url!r}")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url.strip()):
        raise LayoutError(f"the link {url!r} contains spaces or control characters")
    code = segno.make_qr(url.strip(), error="m")
    out = io.BytesIO()
    code.save(out, kind="svg", border=4, dark="#000000", light="#FFFFFF", xmldecl=False)
    return out.getvalue().decode("utf-8")
