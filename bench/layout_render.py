"""Benchmark: rendering a flyer with typeset_flyer against bare typst.compile calls.

    python -m bench.layout_render [--rounds 3] [--ppi 150] [--bleed] [--write]

For every format in ``FORMATS`` and every design in ``DESIGNS``, with the
example brief (``examples/briefs/bakery.toml``), the builtin copywriter and the
builtin painter, times side by side in one run:

- ours: ``typeset_flyer(...)``, the whole call (writing the job folder with the
  frosted panel and the header measurement, the PDF and PNG compiles, the
  ``<fitted>`` query, the PDF print boxes, the PNG checks). The text style is
  measured once beforehand, outside the timing, as the layout step does before
  typesetting;
- bare: ``typst.compile(flyer.typ, root=..., font_paths=..., format="pdf")`` and
  ``format="png", ppi=...`` on the same job folder, written once by
  ``write_job``, with the same font book (``_typst_fonts()``). Screen formats
  have no PDF (ours makes none either), so their bare figure is the PNG alone.

Each round visits every format and design, alternating which side runs first;
the figures are medians over the rounds. Both sides run in one process after a
warm-up render of each flyer (fonts loaded); each bare compile gets a fresh copy
of the job folder, as ours gets a new job folder per call, so neither is served
a finished page from Typst's in-process memo cache.
The ratio ours / (bare PDF + bare PNG) is what typeset_flyer costs on top of
Typst itself. ``--write`` records the table in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typst

from backends.base import ArtRequest, CopyRequest, ImageRequest
from backends.builtin_image import BuiltinPainter
from backends.builtin_text import BuiltinCopywriter
from bench.results import machine_line, record
from hyperlocal.briefs.loading import load_brief
from hyperlocal.layout.designs import DESIGNS, place_design
from hyperlocal.layout.formats import FORMATS, sdxl_size_for
from hyperlocal.layout.typesetting import (
    PageGeometry,
    TypstJob,
    _typst_fonts,
    measure_style,
    typeset_flyer,
    write_job,
)
from hyperlocal.prompts.clip_tokens import clip_counter
from hyperlocal.prompts.fitting import fit_image_prompt

BRIEF = Path("examples/briefs/bakery.toml")
HEADING_FONT = "Fjalla One"
BODY_FONT = "Source Sans Pro"


@dataclass
class Case:
    """One format and design: the arguments of typeset_flyer, its job folder, the timings."""

    name: str
    design: str
    pdf: bool
    arguments: dict[str, Any]
    job: TypstJob
    ours: list[float] = field(default_factory=list)
    bare_pdf: list[float] = field(default_factory=list)
    bare_png: list[float] = field(default_factory=list)


def _cases(folder: Path, ppi: int, bleed: bool) -> list[Case]:
    """Paint, measure and write a job folder for every format and design (all untimed)."""
    brief = load_brief(BRIEF)
    writer, painter = BuiltinCopywriter(), BuiltinPainter()
    copy = writer.write_copy(CopyRequest(brief=brief, variant=1, variants=3))
    art = writer.direct_art(ArtRequest(brief=brief, copy=copy, variant=1))
    palette = list(brief.brand.colors)
    cases = []
    for name, fmt in FORMATS.items():
        for design in DESIGNS:
            placed = place_design(fmt, design)
            width, height = sdxl_size_for(placed.picture_aspect(fmt), 0.4)
            prompt = fit_image_prompt(
                art,
                syntax=painter.prompt_syntax,
                counters=[clip_counter()],
                zone=placed.calm_zone.describe(),
            )
            picture = painter.generate(
                ImageRequest(
                    prompt=prompt,
                    width=width,
                    height=height,
                    seed=3,
                    attempt=1,
                    steps=1,
                    cfg_scale=0,
                    palette=palette,
                    text_zone=placed.calm_zone,
                )
            )
            geometry = PageGeometry.for_format(fmt, bleed, bleed)
            style = measure_style(picture.png, fmt, placed, palette, geometry)
            arguments: dict[str, Any] = {
                "fmt": fmt,
                "copy": copy,
                "brief": brief,
                "background_png": picture.png,
                "style": style,
                "heading_font": HEADING_FONT,
                "body_font": BODY_FONT,
                "logo_path": brief.brand.logo,
                "print_ppi": ppi,
                "design": placed,
                "bleed": bleed,
                "crop_marks": bleed,
            }
            root = folder / f"{name}-{design}"
            root.mkdir()
            job = write_job(root, **arguments)
            cases.append(Case(name, design, "pdf" in fmt.outputs, arguments, job))
    return cases


def _bare(job: TypstJob, kind: str) -> tuple[float, bytes]:
    # A fresh copy of the job folder (copied outside the timing), as every real render is
    # a new document: compiling one folder again would be served from Typst's memo cache.
    with tempfile.TemporaryDirectory(prefix="hyperlocal-bare-") as fresh:
        root = Path(shutil.copytree(job.entry.parent, Path(fresh) / "job"))
        started = time.perf_counter()
        result = typst.compile(
            str(root / job.entry.name),
            root=str(root),
            font_paths=_typst_fonts(),
            format=kind,
            ppi=job.ppi if kind == "png" else None,
        )
        elapsed = time.perf_counter() - started
    assert isinstance(result, bytes)
    return elapsed, result


def _ours(case: Case) -> float:
    started = time.perf_counter()
    typeset_flyer(**case.arguments)
    return time.perf_counter() - started


def _round(case: Case, bare_first: bool) -> None:
    if not bare_first:
        case.ours.append(_ours(case))
    if case.pdf:
        case.bare_pdf.append(_bare(case.job, "pdf")[0])
    case.bare_png.append(_bare(case.job, "png")[0])
    if bare_first:
        case.ours.append(_ours(case))


def _row(label: str, ours: float, pdf: float | None, png: float) -> str:
    bare = (pdf or 0.0) + png
    shown_pdf = "—" if pdf is None else f"{pdf:.3f}"
    return f"| {label} | {ours:.3f} | {shown_pdf} | {png:.3f} | {bare:.3f} | {ours / bare:.2f} |"


def main() -> None:
    """Run the benchmark and print (and with --write, record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ppi", type=int, default=150, help="print formats' PNG ppi")
    parser.add_argument("--bleed", action="store_true", help="bleed and crop marks on print")
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hyperlocal-bench-") as work:
        cases = _cases(Path(work), args.ppi, args.bleed)
        # Warm-up (font book, first compile), and a check that both sides draw the same page.
        same_png = 0
        for case in cases:
            flyer = typeset_flyer(**case.arguments)
            same_png += flyer.png == _bare(case.job, "png")[1]
        for number in range(args.rounds):
            for case in cases:
                _round(case, bare_first=number % 2 == 1)

    med = statistics.median
    lines = [
        f"{len(cases)} flyers ({len(FORMATS)} formats x {len(DESIGNS)} designs), example bakery "
        f"brief, builtin copy and picture; print PNG at {args.ppi} ppi, screen formats at their "
        f"pixel size; {'bleed and crop marks' if args.bleed else 'no bleed'}; median of "
        f"{args.rounds} alternating rounds, in s",
        "",
        "ours: the whole `typeset_flyer` call, style measured beforehand (excluded); bare: "
        "`typst.compile` of the same job folder (from `write_job`), PDF and PNG separately. "
        f"Bare PNG byte-identical to ours: {same_png}/{len(cases)}. Each flyer rendered once "
        "before the rounds; each bare compile on a fresh copy of the job folder.",
        "",
        "| format / design | ours | bare PDF | bare PNG | bare total | ours / bare |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    total_ours = total_pdf = total_png = 0.0
    for case in cases:
        ours, png = med(case.ours), med(case.bare_png)
        pdf = med(case.bare_pdf) if case.pdf else None
        total_ours, total_pdf, total_png = (
            total_ours + ours,
            total_pdf + (pdf or 0.0),
            total_png + png,
        )
        lines.append(_row(f"{case.name} / {case.design}", ours, pdf, png))
    lines.append(_row("**all formats (sum)**", total_ours, total_pdf, total_png))
    print(machine_line())
    print()
    print("\n".join(lines))
    if args.write:
        record("Layout render (`python -m bench.layout_render --write`)", lines)


if __name__ == "__main__":
    main()
