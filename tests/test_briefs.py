"""Briefs: reading TOML, YAML and JSON, and refusing bad input with one clear line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hyperlocal.briefs.loading import load_brief, validate_brief
from hyperlocal.errors import AssetError, BriefError
from hyperlocal.models import Brief
from hyperlocal.text import slugify

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GOOD = {
    "business": "Rosie's Bakery",
    "event": "Sourdough for Beginners",
    "date": "Saturday 14 March",
    "time": "10am – 1pm",
    "place": "12 Market Street",
    "price": "£35",
    "url": "https://rosies.example/sourdough",
    "brand": {"colors": ["#7a3e1d", "e8a33d", "#FFF"]},
}


def test_the_example_brief_loads_with_its_logo() -> None:
    brief = load_brief(EXAMPLES / "briefs" / "bakery.toml", allowed_dirs=[EXAMPLES])
    assert brief.business == "Rosie's Bakery"
    assert brief.brand.logo is not None
    assert brief.brand.logo.is_absolute()
    assert brief.brand.logo.is_file()


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
def test_briefs_load_from_toml_yaml_and_json(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"brief{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(GOOD))
    elif suffix == ".yaml":
        import yaml

        path.write_text(yaml.safe_dump(GOOD, allow_unicode=True))
    else:
        lines = [
            f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in GOOD.items() if k != "brand"
        ]
        lines += ["[brand]", 'colors = ["#7a3e1d", "e8a33d", "#FFF"]']
        path.write_text("\n".join(lines), encoding="utf-8")
    brief = load_brief(path)
    assert brief.price == "£35"
    assert brief.brand.colors == ["#7A3E1D", "#E8A33D", "#FFFFFF"]


def test_command_line_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "brief.json"
    path.write_text(json.dumps(GOOD))
    brief = load_brief(path, {"price": "Free", "date": None})
    assert brief.price == "Free"
    assert brief.date == GOOD["date"]


def _error(data: dict[str, object]) -> str:
    with pytest.raises(BriefError) as caught:
        validate_brief(data, "brief.toml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("brief.toml: ")
    return message


def test_a_missing_field_is_named() -> None:
    data = {k: v for k, v in GOOD.items() if k != "place"}
    assert "place is required" in _error(data)


def test_an_unknown_field_is_named_with_the_allowed_ones() -> None:
    message = _error({**GOOD, "colour": "red"})
    assert "unknown field 'colour'" in message
    assert "business" in message


def test_a_wrong_type_is_named() -> None:
    assert "business" in _error({**GOOD, "business": ["a", "list"]})


def test_over_long_text_is_refused() -> None:
    message = _error({**GOOD, "event": "x" * 121})
    assert "event" in message
    assert "120" in message


def test_a_bad_colour_is_refused() -> None:
    assert "is not a hex colour" in _error({**GOOD, "brand": {"colors": ["#12345G"]}})


def test_control_characters_are_refused() -> None:
    assert "control characters" in _error({**GOOD, "business": "Rosie\x1b[31m"})


@pytest.mark.parametrize("url", ["javascript:alert(1)", "file:///etc/passwd", "ftp://x.org/a"])
def test_only_http_links_are_accepted(url: str) -> None:
    assert "http:// or https://" in _error({**GOOD, "url": url})


def test_an_unknown_tone_lists_the_choices() -> None:
    assert "'friendly'" in _error({**GOOD, "tone": "angry"})


def test_a_file_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "brief.json"
    path.write_text("[1, 2]")
    with pytest.raises(BriefError, match="must be a table of fields"):
        load_brief(path)


def test_a_file_that_does_not_parse_says_so(tmp_path: Path) -> None:
    path = tmp_path / "brief.toml"
    path.write_text("business = \n")
    with pytest.raises(BriefError, match="not valid TOML"):
        load_brief(path)


def test_a_missing_brief_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(BriefError, match="no such file"):
        load_brief(tmp_path / "nope.toml")


def _brief_with_logo(folder: Path, logo: str) -> Path:
    path = folder / "brief.json"
    path.write_text(json.dumps({**GOOD, "brand": {"logo": logo}}))
    return path


def test_a_logo_next_to_the_brief_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(b"png")
    brief = load_brief(_brief_with_logo(tmp_path, "logo.png"))
    assert brief.brand.logo == (tmp_path / "logo.png").resolve()


def test_a_logo_outside_the_allowed_folders_is_refused(tmp_path: Path) -> None:
    briefs = tmp_path / "briefs"
    briefs.mkdir()
    (tmp_path / "secret.png").write_bytes(b"png")
    with pytest.raises(AssetError, match="outside the allowed folders"):
        load_brief(_brief_with_logo(briefs, "../secret.png"))


def test_an_absolute_logo_path_outside_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "logo.png").write_bytes(b"png")
    (tmp_path / "briefs").mkdir()
    path = _brief_with_logo(tmp_path / "briefs", str(tmp_path / "elsewhere" / "logo.png"))
    with pytest.raises(AssetError, match="outside the allowed folders"):
        load_brief(path)


def test_a_symlinked_logo_pointing_outside_is_refused(tmp_path: Path) -> None:
    (tmp_path / "briefs").mkdir()
    (tmp_path / "private.png").write_bytes(b"png")
    os.symlink(tmp_path / "private.png", tmp_path / "briefs" / "logo.png")
    with pytest.raises(AssetError, match="outside the allowed folders"):
        load_brief(_brief_with_logo(tmp_path / "briefs", "logo.png"))


def test_a_missing_logo_is_named(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="not found"):
        load_brief(_brief_with_logo(tmp_path, "logo.png"))


def test_a_logo_must_be_an_image_file() -> None:
    with pytest.raises(ValueError, match="PNG, SVG or JPEG"):
        Brief.model_validate({**GOOD, "brand": {"logo": "notes.txt"}})


def test_facts_are_kept_exactly_as_given() -> None:
    brief = Brief.model_validate(GOOD)
    assert brief.facts() == {
        "date": "Saturday 14 March",
        "time": "10am – 1pm",
        "place": "12 Market Street",
        "price": "£35",
    }


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Rosie's Bakery Sourdough for Beginners", "rosie-s-bakery-sourdough-for-beginners"),
        ("Piekarnia Źródło", "piekarnia-zrodlo"),
        ("Пекарня Свежий хлеб", "pekarnia-svezhii-khleb"),
        ("Bánh mì Đà Nẵng", "banh-mi-da-nang"),
        ("Straße Café Øl", "strasse-cafe-ol"),
        ("<b>x</b> Bakery", "b-x-b-bakery"),
        ("🍞🍞", "flyer"),
        ("a" * 50, "a" * 40),
    ],
)
def test_run_names_are_ascii_slugs_of_any_script(name: str, slug: str) -> None:
    assert slugify(name) == slug


@pytest.mark.parametrize(
    ("tag", "normalised"),
    [("pl", "pl"), ("AR-eg", "ar-EG"), ("zh-hant-tw", "zh-Hant-TW"), (" he ", "he"), ("", None)],
)
def test_a_language_tag_is_normalised(tag: str, normalised: str | None) -> None:
    brief = Brief(business="Rosie's", event="Bread", place="Market St", language=tag)
    assert brief.language == normalised


def test_a_bad_language_tag_is_one_clear_error() -> None:
    with pytest.raises(BriefError) as caught:
        validate_brief(
            {"business": "Rosie's", "event": "Bread", "place": "Market St", "language": "Polish!"},
            "brief.toml",
        )
    assert "language: must be a language tag such as en, pl, he or ar-EG" in str(caught.value)
    assert "\n" not in str(caught.value)
