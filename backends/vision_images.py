"""Pictures prepared for a vision model: a pixel budget in whole patches, as a data URI.

Vision-language models such as Qwen2-VL cut a picture into 28x28 patches (14-pixel
ViT patches merged 2x2) and spend one token per patch, so the picture's pixel count
is its prompt cost. ``smart_size`` follows Qwen2-VL's ``smart_resize``: round both
sides to whole patches, then scale down to ``max_pixels`` or up to ``min_pixels``
keeping the aspect ratio. Servers that resize themselves then have nothing to do,
and the request carries no pixels the model would throw away.

Pictures go out as PNG, not JPEG: lossless, so the model judges the pixels the
heuristic checks measured, and JPEG's block artefacts cannot be mistaken for (or
hide) the painting defects the model is asked about.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

from PIL import Image

from hyperlocal.errors import InvalidImage
from hyperlocal.pictures import decode_picture

#: Pixels per side of one vision token (Qwen2-VL: 14-pixel patches merged 2x2).
PATCH = 28
#: Most ratio of long to short side accepted (Qwen2-VL refuses beyond 200).
MAX_ASPECT = 200.0
#: Fewest pixels sent: about 224x224, the input of CLIP-style encoders; tiny pictures grow.
MIN_PIXELS = 64 * PATCH * PATCH


@dataclass(frozen=True)
class VisionProfile:
    """A pixel budget for the pictures sent to the vision model."""

    name: str
    max_pixels: int
    min_pixels: int = MIN_PIXELS

    @property
    def max_tokens(self) -> int:
        """The most vision tokens one picture costs (one per 28x28 patch)."""
        return self.max_pixels // (PATCH * PATCH)


#: Named budgets: fast (256 tokens, ~448x448), balanced (512), quality (1280, ~1000x1000).
VISION_PROFILES: dict[str, VisionProfile] = {
    "fast": VisionProfile("fast", 256 * PATCH * PATCH),
    "balanced": VisionProfile("balanced", 512 * PATCH * PATCH),
    "quality": VisionProfile("quality", 1280 * PATCH * PATCH),
}


def smart_size(
    width: int, height: int, *, max_pixels: int, min_pixels: int, patch: int = PATCH
) -> tuple[int, int]:
    """Return ``(width, height)``: multiples of ``patch``, area in [min_pixels, max_pixels].

    Qwen2-VL's ``smart_resize``: sides rounded to the nearest multiple of ``patch``
    (at least one patch); if that is over budget, both sides are scaled by one factor
    and rounded down, if under, scaled up and rounded up. Raises ``ValueError`` for
    a side under 1, a ratio of sides over ``MAX_ASPECT``, or a budget that cannot
    hold a whole patch.
    """
    if width < 1 or height < 1:
        raise ValueError(f"a picture needs at least 1x1 pixels, not {width}x{height}")
    if patch < 1 or min_pixels < patch * patch or max_pixels < min_pixels:
        raise ValueError(
            f"need patch >= 1 and {patch}x{patch} <= min_pixels ({min_pixels}) "
            f"<= max_pixels ({max_pixels})"
        )
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ValueError(f"a {width}x{height} picture is too long and thin to check")

    def rounded(value: float, how: str) -> int:
        steps = {"round": round, "floor": math.floor, "ceil": math.ceil}[how](value / patch)
        return max(patch, int(steps) * patch)

    new_w, new_h = rounded(width, "round"), rounded(height, "round")
    if new_w * new_h > max_pixels:
        beta = math.sqrt(width * height / max_pixels)
        new_w, new_h = rounded(width / beta, "floor"), rounded(height / beta, "floor")
    elif new_w * new_h < min_pixels:
        beta = math.sqrt(min_pixels / (width * height))
        new_w, new_h = rounded(width * beta, "ceil"), rounded(height * beta, "ceil")
    # A side clamped up to one patch (a very thin picture) can overshoot the budget:
    # take patches off the longer side until it fits, which keeps every side whole.
    while new_w * new_h > max_pixels and max(new_w, new_h) > patch:
        if new_w >= new_h:
            new_w -= patch
        else:
            new_h -= patch
    return new_w, new_h


def prepare_image(png: bytes, *, max_pixels: int, min_pixels: int, patch: int = PATCH) -> bytes:
    """Return the picture resized by ``smart_size`` as RGB PNG bytes.

    Raises ``InvalidImage`` when the bytes do not decode, ``ValueError`` for a
    budget or shape ``smart_size`` refuses.
    """
    # Alpha and palettes mean nothing to the model; RGB is what it was trained on.
    rgb = decode_picture(png, "RGB")
    size = smart_size(
        rgb.width, rgb.height, max_pixels=max_pixels, min_pixels=min_pixels, patch=patch
    )
    if size != rgb.size:
        # Lanczos keeps edges crisp when shrinking, so lettering stays visible to the model.
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    # Painted pictures carry grain, which makes zlib's heavier levels slow for little gain.
    rgb.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def data_uri(image_bytes: bytes) -> str:
    """Return ``image_bytes`` as a base64 data URI, typed by its magic number (PNG or JPEG).

    Raises ``InvalidImage`` for bytes that are neither.
    """
    if image_bytes.startswith(b"\x89PNG\r\n\x1a\n"):
        mime = "image/png"
    elif image_bytes.startswith(b"\xff\xd8\xff"):
        mime = "image/jpeg"
    else:
        raise InvalidImage(f"{len(image_bytes)} bytes are neither PNG nor JPEG")
    return f"data:{mime};base64,{base64.b64encode(image_bytes).decode('ascii')}"
