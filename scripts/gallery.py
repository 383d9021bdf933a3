"""Make the README's gallery: ``python -m scripts.gallery`` (about a minute, offline).

Flyers for the example briefs in ``briefs/``, one per entry of ``GALLERY`` (a brief, a
format, a layout design and a seed), made by the ``flyer`` flow with the builtin
backends (template copy, procedural painter, pixel checks: no model, no network) and
saved as small JPEGs in ``docs/gallery/`` (``--out`` for another folder).

The same command gives the same pictures: every setting that shapes a flyer is fixed
here (backends, profile, one variant, the design, the seed), the run happens in a
temporary folder (no ``.env`` or ``hyperlocal.toml`` of the checkout applies) with its
own cache, and the JPEGs are encoded with fixed options. Runs go to the Prefect server
``PREFECT_API_URL`` names, or to a temporary one.

Importing this module imports nothing heavy (tests read ``GALLERY``); ``main`` does
the work. Exit code 0, or 1 when a flyer could not be made (one line saying why).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BRIEFS = ROOT / "briefs"
OUT = ROOT / "docs" / "gallery"

#: Longest side of a gallery JPEG by format (pixels): small enough for a README.
LONG_SIDE = {"letter": 640, "square": 520, "story": 640}
JPEG_OPTIONS = {"quality": 80, "optimize": True, "progressive": True, "subsampling": "4:2:0"}


@dataclass(frozen=True)
class Entry:
    """One gallery flyer: which brief, in which format, design and seed."""

    brief: str
    format: str
    design: str
    seed: int

    @property
    def name(self) -> str:
        """The JPEG's file name: ``cafe-letter-frosted.jpg``."""
        return f"{Path(self.brief).stem}-{self.format}-{self.design}.jpg"


GALLERY: tuple[Entry, ...] = (
    Entry("cafe.toml", "letter", "frosted", 11),
    Entry("gig.toml", "story", "scrim", 12),
    Entry("farmers-market.toml", "square", "split", 13),
    Entry("charity-run.toml", "letter", "split", 14),
    Entry("yoga.toml", "story", "frosted", 15),
    Entry("yard-sale.toml", "square", "scrim", 16),
)

#: Settings fixed for every gallery flyer, whatever the machine's settings say.
FIXED_ENV = {
    "HYPERLOCAL_TEXT__KIND": "builtin",
    "HYPERLOCAL_IMAGE__KIND": "builtin",
    "HYPERLOCAL_VISION__KIND": "heuristic",
    "HYPERLOCAL_MODEL_WORKERS": "off",
    "HYPERLOCAL_TASK_RUNNER": "threads",
    "HYPERLOCAL_PROFILE": "preview",
    "HYPERLOCAL_VARIANTS": "1",
}


def build_parser() -> argparse.ArgumentParser:
    """Return the gallery command's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.gallery",
        description="Make the README gallery's flyers (builtin backends, fixed seeds).",
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder (default: {OUT})")
    return parser


@contextmanager
def _fixed_settings(workdir: Path) -> Iterator[None]:
    """Run inside ``workdir`` with only the gallery's settings; restore both on leaving."""
    saved = dict(os.environ)
    cwd = Path.cwd()
    for name in list(os.environ):
        if name.startswith("HYPERLOCAL_"):
            del os.environ[name]
    os.environ.update(FIXED_ENV)
    os.environ["HYPERLOCAL_CONFIG"] = str(workdir / "no-hyperlocal.toml")
    os.environ["HYPERLOCAL_CACHE_DIR"] = str(workdir / "cache")
    os.environ["HYPERLOCAL_OUTPUT_DIR"] = str(workdir / "output")
    os.chdir(workdir)
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


def make_gallery(out: Path, entries: Sequence[Entry] = GALLERY) -> list[Path]:
    """Make each entry's flyer and write it to ``out`` as a JPEG; return the JPEGs' paths.

    Raises what the flow raises (``HyperlocalError`` for a bad brief or setting, a
    step's fault) and ``OSError`` when ``out`` cannot be written.
    """
    # Heavy imports here, not at module level: tests import this module for GALLERY.
    from PIL import Image

    from flows.cli import quiet_prefect_console
    from flows.flyer import assets_allowed_from, flyer_flow
    from hyperlocal.briefs.loading import load_brief
    from hyperlocal.settings import load_settings

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with (
        tempfile.TemporaryDirectory(prefix="hyperlocal-gallery-") as work,
        _fixed_settings(Path(work)),
        # The briefs' own folder, for their logos (it is no asset folder by default).
        assets_allowed_from(BRIEFS),
    ):
        quiet_prefect_console(verbose=False)
        for entry in entries:
            os.environ["HYPERLOCAL_LAYOUT__DESIGNS"] = f'["{entry.design}"]'
            os.environ["HYPERLOCAL_IMAGE__SEED"] = str(entry.seed)
            settings = load_settings()
            brief = load_brief(BRIEFS / entry.brief, None, settings.asset_dirs)
            outcome = flyer_flow(settings)(brief=brief, variants=1, formats=[entry.format])
            png = outcome.folder / f"variant_01_{entry.format}.png"
            with Image.open(png) as picture:
                small = picture.convert("RGB")
            small.thumbnail((LONG_SIDE[entry.format],) * 2, Image.Resampling.LANCZOS)
            target = out / entry.name
            small.save(target, "JPEG", **JPEG_OPTIONS)
            written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Make the gallery and print each JPEG with its size; return the exit code."""
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        written = make_gallery(args.out.resolve())
    except Exception as exc:  # a script for people: one line, not a traceback
        print(f"gallery: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return 1
    for path in written:
        print(f"{path}  {path.stat().st_size // 1024} KB")
    print(f"{len(written)} flyers in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
