"""Briefs: reading TOML, YAML and JSON, and refusing bad input with one clear line."""

from __future__ import annotations

import json
import os
import re
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
    from PIL import Image

    # A real picture: a logo's header is read (its pixel count is limited).
    Image.new("RGB", (8, 8), "#336699").save(tmp_path / "logo.png")
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
    [
        ("pl", "pl"),
        ("AR-eg", "ar-EG"),
        ("zh-hant-tw", "zh-Hant-TW"),
        (" he ", "he"),
        ("sr-latn", "sr-Latn"),
        ("en", "en"),
        ("iw", "he"),
        ("", None),
    ],
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
    assert "language: must be a language tag such as en, pl, he, ar-EG" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("tag", ["xx-INVALID", "xx", "en-YY", "zh-Hxxx", "x-private", "und"])
def test_a_language_tag_outside_the_registry_is_refused(tag: str) -> None:
    with pytest.raises(BriefError) as caught:
        validate_brief(
            {"business": "Rosie's", "event": "Bread", "place": "Market St", "language": tag},
            "brief.toml",
        )
    message = str(caught.value)
    assert message.startswith("brief.toml: language: must be a language tag such as en, pl")
    assert repr(tag) in message
    assert "\n" not in message


# -- bidirectional controls ------------------------------------------------------------------

BIDI_CASES = [
    ("date", "Saturday 14 March\u202e", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("time", "\u202d10:00", "U+202D (LEFT-TO-RIGHT OVERRIDE)"),
    ("business", "Rosie\u202bs", "U+202B (RIGHT-TO-LEFT EMBEDDING)"),
    ("details", "line one\nline \u2067two", "U+2067 (RIGHT-TO-LEFT ISOLATE)"),
    ("call_to_action", "Book\u2069", "U+2069 (POP DIRECTIONAL ISOLATE)"),
    ("brand.heading_font", "Roboto\u2066", "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
]


def _with_field(dotted: str, value: str) -> dict[str, object]:
    data: dict[str, object] = {**GOOD, "brand": {}}
    if dotted.startswith("brand."):
        data["brand"] = {dotted.removeprefix("brand."): value}
    else:
        data[dotted] = value
    return data


@pytest.mark.parametrize(("field", "value", "named"), BIDI_CASES)
def test_a_bidirectional_control_in_any_field_is_refused_by_name(
    field: str, value: str, named: str
) -> None:
    with pytest.raises(BriefError) as caught:
        validate_brief(_with_field(field, value), "brief.toml")
    assert str(caught.value) == (
        f"brief.toml: {field}: contains the bidirectional control {named}: remove it"
    )


def test_a_bidirectional_control_is_refused_from_a_file_and_from_flags(tmp_path: Path) -> None:
    path = tmp_path / "brief.json"
    path.write_text(json.dumps({**GOOD, "date": "Sat 14\u202e"}), encoding="utf-8")
    with pytest.raises(BriefError, match=r"date: contains the bidirectional control U\+202E"):
        load_brief(path)
    path.write_text(json.dumps(GOOD), encoding="utf-8")
    with pytest.raises(BriefError, match=r"price: contains the bidirectional control U\+2066"):
        load_brief(path, {"price": "\u2066£35"})


def test_the_flow_parameter_refuses_a_bidirectional_control() -> None:
    """The UI form and the API hand the flow a ``Brief``: its own validation refuses it."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="U\\+202E"):
        Brief.model_validate({**GOOD, "date": "14 March\u202e"})


def test_bidirectional_marks_stay_allowed_in_hebrew_and_arabic_text() -> None:
    # RLM, LRM and ALM are invisible letters that Hebrew and Arabic keyboards type.
    brief = Brief.model_validate(
        {
            **GOOD,
            "event": "\u05e2\u05e8\u05d1 \u05d2'\u05d0\u05d6\u200f",
            "time": "10:00\u200e",
            "price": "\u061c50",
        }
    )
    assert brief.event.endswith("\u200f")


# -- the Prefect form: the Brief's JSON schema -------------------------------------------------

OPTIONAL_TEXTS = ("date", "time", "price", "call_to_action", "url", "language")


def test_the_form_shows_optional_texts_as_plain_bounded_boxes() -> None:
    schema = Brief.model_json_schema()
    properties = schema["properties"]
    brand = schema["$defs"]["BrandKit"]["properties"]
    for name in OPTIONAL_TEXTS:
        field = properties[name]
        assert "anyOf" not in field, f"{name} shows a None/str toggle"
        assert field["type"] == "string", name
        assert field["default"] == "", name
    for name in ("logo", "heading_font", "body_font"):
        assert "anyOf" not in brand[name], name
        assert (brand[name]["type"], brand[name]["default"]) == ("string", ""), name
    texts = [*properties.items(), *brand.items()]
    for name, field in texts:
        if field.get("type") == "string" and "enum" not in field:
            assert isinstance(field.get("maxLength"), int), f"{name} has no maxLength"
    assert properties["date"]["maxLength"] == 60


def test_the_form_refuses_javascript_links_and_shows_the_default_colours() -> None:
    schema = Brief.model_json_schema()
    pattern = re.compile(schema["properties"]["url"]["pattern"])
    assert pattern.search("https://rosies.example/a")
    assert pattern.search("HTTP://rosies.example")
    assert pattern.search("")
    for bad in ("javascript:alert(1)", "data:text/html,x", "ftp://x", "//rosies.example"):
        assert not pattern.search(bad), bad
    colours = ["#1F3A5F", "#F2A541", "#FDF6EC"]
    assert schema["$defs"]["BrandKit"]["properties"]["colors"]["default"] == colours
    assert schema["properties"]["brand"]["default"] == {"colors": colours}
    assert Brief(business="B", event="E", place="P").brand.colors == colours


def test_an_empty_box_in_the_form_means_not_given() -> None:
    empty = {name: "" for name in OPTIONAL_TEXTS}
    brief = Brief.model_validate(
        {**GOOD, **empty, "brand": {"logo": "", "heading_font": " ", "body_font": ""}}
    )
    for name in OPTIONAL_TEXTS:
        assert getattr(brief, name) is None, name
    assert (brief.brand.logo, brief.brand.heading_font, brief.brand.body_font) == (None, None, None)
    # None still means the same from Python, and what is not given stays out of a dump.
    assert Brief(business="B", event="E", place="P", date=None).date is None
    assert "date" not in Brief(business="B", event="E", place="P").model_dump(exclude_defaults=True)


def test_too_long_a_date_is_one_error_naming_the_limit() -> None:
    with pytest.raises(BriefError) as caught:
        validate_brief({**GOOD, "date": "9" * 5000}, "brief.toml")
    assert str(caught.value) == "brief.toml: date: String should have at most 60 characters"


# -- files that are not regular files, byte-order marks -----------------------------------------


def test_a_brief_linked_to_an_endless_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    link = tmp_path / "brief.toml"
    link.symlink_to("/dev/zero")
    with pytest.raises(BriefError) as caught:
        load_brief(link)
    assert str(caught.value) == (
        f"{link}: is a character device, not a regular file: name a brief file"
    )


def test_a_fifo_named_as_a_brief_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "brief.json"
    os.mkfifo(fifo)
    # Opened for reading with no writer, a FIFO blocks: the loader must not wait on it.
    with pytest.raises(BriefError) as caught:
        load_brief(fifo)
    assert str(caught.value) == (
        f"{fifo}: is a FIFO (named pipe), not a regular file: name a brief file"
    )


@pytest.mark.parametrize("name", ["shops.csv", "events.json"])
def test_a_batch_set_linked_to_an_endless_device_is_refused_without_reading_it(
    tmp_path: Path, name: str
) -> None:
    from hyperlocal.briefs.sets import load_brief_set

    link = tmp_path / name
    link.symlink_to("/dev/zero")
    # A CSV is the whole set: it fails; a JSON file is one entry of the set: its problem.
    try:
        problems = [problem.message for problem in load_brief_set(link).problems]
    except BriefError as exc:
        problems = [str(exc)]
    assert len(problems) == 1
    assert "is a character device, not a regular file" in problems[0]


def test_a_folder_named_as_a_brief_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "brief.yaml"
    folder.mkdir()
    with pytest.raises(BriefError) as caught:
        load_brief(folder)
    assert "is a folder" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_brief_over_the_limit_is_refused_after_reading_only_the_limit(tmp_path: Path) -> None:
    from hyperlocal.briefs.loading import MAX_BRIEF_BYTES

    path = tmp_path / "brief.json"
    path.write_text(json.dumps({**GOOD, "details": "x" * MAX_BRIEF_BYTES}), encoding="utf-8")
    with pytest.raises(BriefError, match=f"more than {MAX_BRIEF_BYTES} bytes is too large"):
        load_brief(path)


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
def test_a_brief_saved_with_a_byte_order_mark_loads(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"brief{suffix}"
    if suffix == ".toml":
        text = 'business = "Rosie\'s"\nevent = "Bread"\nplace = "Market St"\n'
    elif suffix == ".yaml":
        text = "business: Rosie's\nevent: Bread\nplace: Market St\n"
    else:
        text = json.dumps({"business": "Rosie's", "event": "Bread", "place": "Market St"})
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    brief = load_brief(path)
    assert brief.business == "Rosie's"
