"""Pictures for tests: painted by the builtin painter, so the heuristic screen passes them."""

from __future__ import annotations

from backends.base import ImageRequest
from backends.builtin_image import BuiltinPainter
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS, Zone
from hyperlocal.models import GeneratedImage, ImagePrompt, PromptPhrase
from hyperlocal.prompts.clip_tokens import clip_counter
from hyperlocal.prompts.fitting import fit_image_prompt

LETTER_ZONE = place_design(FORMATS["letter"], "frosted").text_zone
BRAND = ["#1F3A5F", "#F2A541", "#FDF6EC"]
_PAINTER = BuiltinPainter()


def painted(
    seed: int = 1, width: int = 320, height: int = 416, zone: Zone = LETTER_ZONE
) -> GeneratedImage:
    """Return a builtin painter picture with a calm ``zone``."""
    fitted = fit_image_prompt(
        ImagePrompt(
            phrases=[PromptPhrase(text="abstract poster background", role="subject", priority=1)]
        ),
        syntax=_PAINTER.prompt_syntax,
        counters=[clip_counter()],
        zone=zone.describe(),
    )
    request = ImageRequest(
        prompt=fitted,
        width=width,
        height=height,
        seed=seed,
        attempt=1,
        steps=1,
        cfg_scale=0.0,
        palette=BRAND,
        text_zone=zone,
    )
    return _PAINTER.generate(request)
