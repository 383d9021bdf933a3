"""The builtin copywriter and art director: deterministic templates, no model.

It writes genuinely different variants (each from its own creative angle), in
the brief's tone, and copies every fact (date, time, place, price) exactly. Art
direction maps the brief's words to a scene and the tone to a style, so a real
image model given these prompts paints something fitting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from backends.base import ArtRequest, CopyRequest, Health
from backends.source_revision import module_revision
from backends.work_log import WorkLog
from hyperlocal.colors import hex_rgb
from hyperlocal.errors import InvalidModelOutput
from hyperlocal.fact_scan import contradictions
from hyperlocal.models import (
    BackendIdentity,
    Brief,
    CopyDraft,
    FlyerCopy,
    ImagePrompt,
    PromptPhrase,
    Tone,
    fact_problems,
)
from hyperlocal.text import clip_words


@dataclass(frozen=True)
class Angle:
    """One creative angle: how a variant leads."""

    name: str
    headlines: tuple[str, ...]
    subheads: tuple[str, ...]


# Templates use {event}, {business}, {audience}; the first that fits its limit wins.
ANGLES: tuple[Angle, ...] = (
    Angle(
        "announcement",
        ("{event}",),
        ("{business} invites you", "Presented by {business}", "From {business}"),
    ),
    Angle(
        "invitation",
        ("You're invited: {event}", "Join us for {event}", "Come to {event}"),
        ("An event by {business} for {audience}", "Hosted by {business}", "By {business}"),
    ),
    Angle(
        "urgency",
        ("Don't miss {event}", "Save the date: {event}", "Coming soon: {event}"),
        ("Places are limited: {business}", "{business}", "{business}"),
    ),
    Angle(
        "community",
        ("Meet the neighbours at {event}", "Together at {event}", "{event}: all welcome"),
        ("Your local {business}", "With {business}", "{business}"),
    ),
)

CALLS_TO_ACTION: dict[str, str] = {
    "friendly": "Come along!",
    "bold": "Book now",
    "elegant": "Reserve your place",
    "playful": "Bring a friend!",
    "calm": "Drop by",
}

AUDIENCE_LINES: dict[str, str] = {
    "friendly": "Perfect for {audience}",
    "bold": "Made for {audience}",
    "elegant": "Curated for {audience}",
    "playful": "Calling all {audience}!",
    "calm": "Welcoming {audience}",
}

# Words in the brief -> (subject, setting) of the picture. The first match wins.
SCENES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("sourdough", "bread", "bakery", "baking", "pastry", "pastries", "croissant", "cake"),
        "artisan sourdough loaves and pastries on a rustic wooden table",
        "inside a cosy neighbourhood bakery",
    ),
    (
        ("coffee", "cafe", "café", "espresso", "latte", "brunch"),
        "steaming cups of coffee and fresh pastries on a cafe counter",
        "in a bright corner cafe",
    ),
    (
        ("yoga", "pilates", "meditation", "wellness", "stretch"),
        "yoga mats and plants in a calm sunlit studio",
        "in an airy wooden studio",
    ),
    (
        ("jazz", "concert", "gig", "music", "band", "choir", "dj", "open mic"),
        "musical instruments on a small stage with warm spotlights",
        "in an intimate live music venue",
    ),
    (
        ("market", "fair", "farmers", "craft", "stall", "vintage"),
        "colourful market stalls with fresh produce and handmade goods",
        "on a lively town square",
    ),
    (
        ("run", "5k", "fitness", "gym", "bootcamp", "cycling", "bike"),
        "running shoes and a park trail at sunrise",
        "in a green city park",
    ),
    (
        ("book", "reading", "library", "poetry", "author"),
        "stacks of books and a reading lamp on a wooden desk",
        "in a cosy independent bookshop",
    ),
    (
        ("garden", "plant", "flower", "seed", "allotment"),
        "potted plants and fresh flowers on a sunny potting bench",
        "in a community garden",
    ),
    (
        ("pizza", "dinner", "restaurant", "tasting", "wine", "supper", "food", "kitchen"),
        "a beautifully set table with shared plates and glasses",
        "in a warm neighbourhood restaurant",
    ),
    (
        ("dog", "cat", "pet", "puppy", "vet"),
        "a happy dog and cat on a cosy rug",
        "in a friendly pet shop",
    ),
    (
        ("kids", "children", "family", "toddler", "school"),
        "colourful craft materials and toys on a playroom table",
        "in a cheerful community hall",
    ),
    (
        ("art", "gallery", "paint", "pottery", "ceramic", "workshop", "drawing"),
        "paint brushes, ceramics and an easel with a colourful canvas",
        "in a sunlit artist studio",
    ),
    (
        ("sale", "discount", "shop", "boutique", "fashion", "clothes"),
        "stylish clothes on rails and shopping bags",
        "in a bright independent boutique",
    ),
    (
        ("dance", "salsa", "ballet", "ceilidh", "disco"),
        "a polished dance floor with festoon lights",
        "in a lively dance hall",
    ),
)

STYLES: dict[str, tuple[str, ...]] = {
    "friendly": ("warm editorial photograph", "inviting lifestyle photograph"),
    "bold": ("vibrant high-contrast photograph", "punchy graphic poster photograph"),
    "elegant": ("refined minimal fine-art photograph", "luxurious still-life photograph"),
    "playful": ("bright colourful playful photograph", "cheerful pop-art styled photograph"),
    "calm": ("soft airy pastel photograph", "serene minimalist photograph"),
}

LIGHTING: tuple[str, ...] = (
    "soft golden hour light",
    "bright natural window light",
    "warm ambient evening light",
    "soft diffused daylight",
)

NEGATIVE: tuple[tuple[str, int], ...] = (
    ("text, letters, words, typography, watermark, logo, signature", 100),
    ("blurry, low quality, jpeg artefacts", 60),
    ("deformed hands, distorted faces, extra fingers", 50),
    ("cluttered, busy background", 30),
)

# Named colours for describing a palette to an image model (name, RGB).
COLOUR_NAMES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("black", (20, 20, 20)),
    ("charcoal", (60, 60, 66)),
    ("grey", (128, 128, 128)),
    ("white", (250, 250, 250)),
    ("cream", (253, 246, 228)),
    ("navy", (31, 45, 90)),
    ("blue", (40, 100, 200)),
    ("sky blue", (130, 190, 240)),
    ("teal", (20, 128, 128)),
    ("green", (50, 140, 70)),
    ("sage", (150, 175, 140)),
    ("olive", (120, 120, 40)),
    ("yellow", (245, 210, 60)),
    ("amber", (240, 165, 50)),
    ("orange", (240, 120, 40)),
    ("terracotta", (200, 100, 70)),
    ("red", (200, 40, 45)),
    ("burgundy", (120, 25, 45)),
    ("pink", (240, 150, 180)),
    ("purple", (120, 60, 160)),
    ("lavender", (180, 160, 220)),
    ("brown", (120, 80, 50)),
    ("beige", (220, 200, 170)),
)


def colour_name(hex_colour: str) -> str:
    """Return the nearest plain colour name for ``#RRGGBB``."""
    rgb = hex_rgb(hex_colour)

    def distance(item: tuple[str, tuple[int, int, int]]) -> int:
        return sum((a - b) ** 2 for a, b in zip(item[1], rgb, strict=True))

    return min(COLOUR_NAMES, key=distance)[0]


def _fill(template: str, brief: Brief) -> str:
    return template.format(event=brief.event, business=brief.business, audience=brief.audience)


def _first_fitting(
    templates: tuple[str, ...], brief: Brief, limit: int, what: str, log: WorkLog | None
) -> str:
    """Return the first template that fits ``limit``, else the last one cut (and noted)."""
    for template in templates:
        if "{audience}" in template and not brief.audience:
            continue
        text = _fill(template, brief)
        if len(text) <= limit:
            return text
    return _clipped(_fill(templates[-1], brief), limit, what, log)


def _detail_points(brief: Brief) -> list[str]:
    """Return the details as points, whole (``_printed_points`` cuts the ones printed)."""
    # Sentences, semicolon clauses and lines of the details become points.
    pieces = re.split(r"(?<=[.!?])\s+|;\s*|\n+", brief.details)
    # Tabs and runs of spaces are fine in details but not in a one-line point.
    points = [" ".join(p.split()).rstrip(".") for p in pieces if p.strip()]
    points = [p for p in points if p]
    return [p[0].upper() + p[1:] for p in points]


def _scene(brief: Brief) -> tuple[str, str]:
    words = f"{brief.event} {brief.business} {brief.details}".lower()
    for keywords, subject, setting in SCENES:
        if any(re.search(rf"\b{re.escape(k)}", words) for k in keywords):
            return subject, setting
    return (
        f"a welcoming scene that evokes {clip_words(brief.event, 60).lower()}",
        "in a friendly neighbourhood setting",
    )


def _clipped(text: str, limit: int, what: str, log: WorkLog | None) -> str:
    """Return ``text`` cut to ``limit`` at a word boundary, noting a cut in ``log``.

    Every text the copywriter shortens goes through here, so the manifest and the
    command line list each cut with the field and its original length.
    """
    clipped = clip_words(text, limit)
    if clipped != text and log is not None:
        log.cut(f"{what} cut from {len(text)} to {len(clipped)} characters: {clipped!r}")
    return clipped


def _printed_points(points: list[str], keep: int, log: WorkLog | None) -> list[str]:
    """Return the first ``keep`` points cut to 90 characters; notes cuts and points left out."""
    left_out = points[keep:]
    if left_out and log is not None:
        shown = ", ".join(repr(clip_words(p, 30)) for p in left_out)
        log.cut(f"body points: {keep} of {len(points)} printed, left out: {shown}")
    return [
        _clipped(point, 90, f"body point {number}", log)
        for number, point in enumerate(points[:keep], start=1)
    ]


class BuiltinCopywriter:
    """Template copywriter and art director: offline, deterministic, fact-exact."""

    @property
    def identity(self) -> BackendIdentity:
        """The copywriter's identity: its revision is the hash of this module."""
        return BackendIdentity(
            role="text",
            kind="builtin",
            model="template-copywriter",
            revision=module_revision(__name__),
        )

    def health(self) -> Health:
        """Always healthy: it needs nothing but this code."""
        return Health(role="text", kind="builtin", ok=True, detail="templates, no model needed")

    def write_copy(self, request: CopyRequest, log: WorkLog | None = None) -> FlyerCopy:
        """Return the copy of one variant; its angle is chosen by the variant number.

        Like a model's, the copy is a draft with the brief's facts placed verbatim;
        every text cut to fit its line (headline, subhead, body points, call to
        action, fine print) and every body point left out is noted in ``log``, with
        the field and its original length. Raises ``InvalidModelOutput`` only if a
        template broke a fact (a bug).
        """
        if log is not None:
            log.writer(self.identity.label)
            log.structured_output("template")
        brief = request.brief
        angle = ANGLES[(request.variant - 1) % len(ANGLES)]
        tone: Tone = brief.tone
        subhead = _first_fitting(angle.subheads, brief, 120, "subhead", log)
        points = _detail_points(brief)
        if brief.audience and brief.audience not in subhead:
            points.append(AUDIENCE_LINES[tone].format(audience=brief.audience))
        # Rotate the points so variants lead with different details.
        if points:
            shift = (request.variant - 1) % len(points)
            points = points[shift:] + points[:shift]
        cta = brief.call_to_action or CALLS_TO_ACTION[tone]
        fine_print = f"Presented by {brief.business}."
        if brief.url:
            fine_print += " Scan the code for details."
        draft = CopyDraft(
            angle=angle.name,
            headline=_first_fitting(angle.headlines, brief, 60, "headline", log),
            subhead=subhead,
            body_points=_printed_points(points, 3, log),
            call_to_action=_clipped(cta, 40, "call to action", log),
            fine_print=_clipped(fine_print, 200, "fine print", log),
        )
        copy = FlyerCopy.from_draft(draft, brief)
        problems = fact_problems(copy, brief) + contradictions(draft, brief)
        if problems:
            raise InvalidModelOutput("builtin copy broke a fact: " + "; ".join(problems))
        return copy

    def direct_art(self, request: ArtRequest, log: WorkLog | None = None) -> ImagePrompt:
        """Return the phrases of a picture with no lettering that fits the brief and tone."""
        if log is not None:
            log.writer(self.identity.label)
            log.structured_output("template")
        brief = request.brief
        subject, setting = _scene(brief)
        styles = STYLES[brief.tone]
        style = styles[(request.variant - 1) % len(styles)]
        lighting = LIGHTING[(request.variant - 1) % len(LIGHTING)]
        palette = ", ".join(dict.fromkeys(colour_name(c) for c in brief.brand.colors[:3]))
        phrases = [
            PromptPhrase(text=subject, role="subject", priority=100),
            PromptPhrase(text=style, role="style", priority=80),
            PromptPhrase(text=setting, role="setting", priority=60),
            PromptPhrase(text=f"{palette} colour palette", role="style", priority=45),
            PromptPhrase(text=lighting, role="lighting", priority=40),
            PromptPhrase(
                text="high detail, sharp focus, professional", role="quality", priority=20
            ),
        ]
        negative = [PromptPhrase(text=t, role="quality", priority=p) for t, p in NEGATIVE]
        return ImagePrompt(phrases=phrases, negative=negative)
