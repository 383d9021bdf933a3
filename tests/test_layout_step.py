"""The layout step: copy too long for a panel is cut, supporting lines first."""

from __future__ import annotations

import pytest

from backends.base import ArtRequest, CopyRequest, ImageRequest
from backends.builtin_image import BuiltinPainter
from backends.builtin_text import BuiltinCopywriter
from hyperlocal.errors import TextOverflow
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS
from hyperlocal.layout.typesetting import DEFAULT_TEMPLATE, template_digest
from hyperlocal.models import Brief, FlyerCopy, PromptSyntax
from hyperlocal.prompts.clip_tokens import clip_counter
from hyperlocal.prompts.fitting import fit_image_prompt
from tasks.layout import RenderRequest, render_flyer, shorter_copies

LONG = Brief(
    business="Wonderful Neighbourhood Community Bakery and Coffee House of Upper Hebden",
    event="Grand Summer Sourdough Festival with Tastings, Workshops, Live Music and Contests",
    details=(
        "Learn to bake bread from scratch with our master bakers who have decades of experience. "
    )
    * 5,
    date="Saturday 14 March 2026",
    time="10am – 4pm",
    place="Unit 4, The Old Mill Buildings, 12 Market Street, Hebden Bridge, West Yorkshire",
    price="£35 per person, children free",
    audience="families, foodies and curious home bakers of all ages from across the valley",
    url="https://example.org/festival",
)


def _request(brief: Brief, copy: FlyerCopy, format_name: str) -> RenderRequest:
    fmt = FORMATS[format_name]
    writer = BuiltinCopywriter()
    art = writer.direct_art(ArtRequest(brief=brief, copy=copy, variant=1))
    fitted = fit_image_prompt(
        art,
        syntax=PromptSyntax(),
        counters=[clip_counter()],
        zone=place_design(fmt, "frosted").text_zone.describe(),
    )
    image = BuiltinPainter().generate(
        ImageRequest(
            prompt=fitted,
            width=512,
            height=512,
            seed=3,
            attempt=1,
            steps=1,
            cfg_scale=0,
            palette=list(brief.brand.colors),
            text_zone=place_design(fmt, "frosted").text_zone,
        )
    )
    return RenderRequest(
        variant=1,
        format=format_name,
        copy=copy,
        brief=brief,
        background=image,
        heading_font="Fjalla One",
        body_font="Source Sans Pro",
        print_ppi=72,
        template=DEFAULT_TEMPLATE,
        template_digest=template_digest(),
    )


def test_cuts_go_from_the_last_body_point_to_the_fine_print() -> None:
    copy = BuiltinCopywriter().write_copy(CopyRequest(brief=LONG, variant=1, variants=1))
    versions = list(shorter_copies(copy))
    assert versions[0] == (copy, [])
    assert [len(c.body_points) for c, _ in versions] == [3, 2, 1, 0, 0]
    assert versions[-1][0].fine_print == ""
    assert versions[-1][1][-1].startswith("fine print: ")
    for shorter, _ in versions:
        assert (shorter.headline, shorter.when, shorter.where, shorter.price) == (
            copy.headline,
            copy.when,
            copy.where,
            copy.price,
        )


def test_copy_too_long_for_the_square_panel_is_cut_and_recorded() -> None:
    copy = BuiltinCopywriter().write_copy(CopyRequest(brief=LONG, variant=1, variants=1))
    flyer = render_flyer.fn(_request(LONG, copy, "square"))
    assert flyer.cut
    assert flyer.cut[0].startswith("body point 3: ")
    assert (flyer.png_width, flyer.png_height) == (1080, 1080)


def test_a_headline_that_cannot_fit_is_not_cut_but_explained() -> None:
    copy = BuiltinCopywriter().write_copy(CopyRequest(brief=LONG, variant=1, variants=1))
    word = "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamten"
    with pytest.raises(TextOverflow, match="headline does not fit") as caught:
        render_flyer.fn(_request(LONG, copy.model_copy(update={"headline": word}), "square"))
    assert caught.value.block == "headline"
