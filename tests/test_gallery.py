"""The example briefs and the README gallery: every brief loads, every picture is there.

Cheap checks only: no flyer is made here (``python -m scripts.gallery`` makes them).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from PIL import Image

from hyperlocal.briefs.loading import load_brief
from hyperlocal.layout.designs import DESIGNS
from hyperlocal.layout.formats import FormatName
from scripts import example_logos, gallery
from tests.conftest import PROJECT_ROOT

EXAMPLE_BRIEFS = sorted(
    [*(PROJECT_ROOT / "briefs").glob("*.toml"), *(PROJECT_ROOT / "examples").rglob("*.toml")]
)


def test_there_are_example_briefs_of_many_kinds() -> None:
    assert len(EXAMPLE_BRIEFS) >= 7


@pytest.mark.parametrize("path", EXAMPLE_BRIEFS, ids=lambda p: p.name)
def test_every_example_brief_loads_with_its_logo_next_to_it(path: Path) -> None:
    brief = load_brief(path)  # no asset folders: the logo must sit next to the brief
    assert brief.brand.logo is not None
    assert brief.brand.logo.parent == path.parent.resolve()
    with Image.open(brief.brand.logo) as logo:
        assert logo.format == "PNG"
        assert max(logo.size) <= 1024


def test_every_logo_of_the_briefs_folder_is_drawn_by_the_logo_script() -> None:
    briefs = [load_brief(p) for p in EXAMPLE_BRIEFS if p.parent == PROJECT_ROOT / "briefs"]
    assert {b.brand.logo.name for b in briefs if b.brand.logo} == set(example_logos.LOGOS)


def test_the_gallery_names_example_briefs_formats_and_designs_that_exist() -> None:
    assert {e.design for e in gallery.GALLERY} == set(DESIGNS)
    assert {e.format for e in gallery.GALLERY} >= {"letter", "square", "story"}
    assert {e.format for e in gallery.GALLERY} <= set(get_args(FormatName))
    assert len({e.name for e in gallery.GALLERY}) == len(gallery.GALLERY)
    for entry in gallery.GALLERY:
        assert (gallery.BRIEFS / entry.brief).is_file()


def test_the_gallery_pictures_are_committed_small_and_shown_in_the_readme() -> None:
    pictures = [gallery.OUT / entry.name for entry in gallery.GALLERY]
    sizes = [path.stat().st_size for path in pictures]
    assert max(sizes) < 120_000
    assert sum(sizes) < 1_000_000
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.findall(r'src="(docs/gallery/[^"]+)"', readme)
    assert sorted(shown) == sorted(str(p.relative_to(PROJECT_ROOT)) for p in pictures)


def test_importing_the_gallery_script_imports_nothing_heavy() -> None:
    check = (
        "import sys, scripts.gallery, scripts.example_logos; "
        "print(sorted({'prefect', 'flows', 'hyperlocal'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr
