"""Hostile input: generated briefs end as a brief and a correct flyer, or as one clear line.

Briefs come from users, UI forms and batch files. Hypothesis feeds generated
briefs (random unicode, control characters, Typst and Markdown syntax, huge
strings, values of the wrong type, asset paths that try to escape) through the
loading and validation the command line uses (``load_brief``,
``validate_brief``) and, for the valid ones, through the builtin copywriter and
the renderer (``render_flyer``'s function, Typst). Every case must end as a
brief (and a flyer whose PDF shows the text literally) or as a
``HyperlocalError`` whose message is one line: never another exception, never
Typst code run, never a file outside the allowed folders, and only http(s)
links become QR codes. A few command-line runs check that wrong types end with
exit code 2 and one line on stderr.

Examples are derandomized and bounded so the suite stays deterministic and fast.
The inputs that once broke the product (deep nesting, NUL bytes and over-long
names, unbalanced brackets in links) also have explicit tests below.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import struct
import subprocess
import sys
import time
import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from pypdf import PdfReader

from backends.a1111_image import decode_png
from backends.base import CopyRequest
from backends.builtin_text import BuiltinCopywriter
from hyperlocal.briefs.assets import resolve_asset
from hyperlocal.briefs.loading import load_brief, validate_brief
from hyperlocal.errors import AssetError, BriefError, HyperlocalError, InvalidImage
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.fonts import font_library
from hyperlocal.layout.formats import FORMATS
from hyperlocal.layout.qr import qr_svg
from hyperlocal.layout.typesetting import DEFAULT_TEMPLATE, template_digest
from hyperlocal.models import BrandKit, Brief, GeneratedImage, RenderedFlyer
from hyperlocal.pictures import MAX_LOGO_PIXELS, decode_picture
from tasks.layout import RenderRequest, render_flyer
from tests.pictures import painted

T = TypeVar("T")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PASSWD = Path("/etc/passwd")
#: What a leaked /etc/passwd would put on the page.
PASSWD_MARK = "root:"

#: Typst, Markdown, template and shell syntax a brief field may carry (all <= 40 characters).
PAYLOADS = (
    '#read("/etc/passwd")',
    '#import "/etc/passwd": *',
    '#include "/etc/passwd"',
    '#include "/data.json"',
    '#json("/data.json").sizes',
    '#image("/etc/passwd")',
    '#panic("boom")',
    '#eval("1 + 1")',
    "#let x = 1; #x",
    "#sys.inputs",
    "#set page(width: 1pt)",
    "$x^2$ and $ sum $",
    "*bold* _emph_ `raw`",
    '```typ #read("/etc/passwd")```',
    "<label> @label",
    "\\ backslash \\\\",
    "[link](javascript:alert(1))",
    "# Heading",
    "- item + item / term: desc",
    "// comment /* open",
    "{ ] [ } ~ ^ | %",
    "<script>alert(1)</script>",
    "&amp; &#x41; &lt;",
    "{{ business }} {business} %s",
    "${HOME} $(rm -rf /) `id`",
)
#: Characters the default fonts draw: Latin text with the syntax characters of Typst and Markdown.
SAFE_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
    "#$*_[]<>@\\`{}()\"'/:;=+-~!?%&^|.,éèçñüößøåÆŒ£€–—“”‘’…"
)

wrong_types = st.one_of(
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
hostile_text = st.one_of(
    st.sampled_from(PAYLOADS),
    st.lists(st.sampled_from(PAYLOADS), min_size=2, max_size=4).map(" ".join),
    st.text(max_size=40),  # any code point but surrogates: control characters included
    st.text(alphabet=SAFE_ALPHABET, min_size=1, max_size=70),
    st.integers(min_value=100, max_value=300_000).map(lambda n: "A" * n),  # huge
)
field_value = st.one_of(hostile_text, hostile_text, wrong_types)
#: Logo paths: inside, escaping by "..", absolute, through symlinks, odd spellings.
LOGO_PATHS = (
    "logo.png",
    "./logo.png",
    "sub/../logo.png",
    "../../../../../../etc/passwd.png",
    "../outside/secret.png",
    "/etc/passwd.png",
    "link.png",  # a symlink to ../outside/secret.png
    "linkdir/secret.png",  # a symlinked folder pointing outside
    "....//....//etc/x.png",
    "%2e%2e/%2e%2e/etc/x.png",
    "~/.ssh/id_rsa.png",
    "C:\\Windows\\win.png",
    "logo.txt",
    "",
)
logo_value = st.one_of(
    st.sampled_from(LOGO_PATHS),
    # Generated names, NUL bytes included; over-long names have their own test.
    st.text(max_size=30).map(lambda s: s + _with_suffix(s)),
    wrong_types,
)


def _with_suffix(text: str) -> str:
    """Give generated logo names an image suffix half the time (so they reach the path check)."""
    return ".png" if len(text) % 2 == 0 else ""


brand_value = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "colors": st.one_of(
                st.lists(
                    st.sampled_from(["#1F3A5F", "#fff", "F2A541", "#GGG", "red", "#12345", ""]),
                    max_size=6,
                ),
                wrong_types,
            ),
            "logo": logo_value,
            "heading_font": field_value,
            "body_font": field_value,
            "css": field_value,
        },
    ),
    wrong_types,
)
_optional_fields = {
    "details": field_value,
    "date": field_value,
    "time": field_value,
    "price": field_value,
    "audience": field_value,
    "tone": st.one_of(st.sampled_from(["friendly", "bold", "sarcastic", ""]), field_value),
    "call_to_action": field_value,
    "url": st.one_of(
        st.sampled_from(["https://example.com/a", "javascript:alert(1)"]), field_value
    ),
    "brand": brand_value,
    "__proto__": field_value,
}
printable = st.one_of(
    st.sampled_from(PAYLOADS), st.text(alphabet=SAFE_ALPHABET, min_size=1, max_size=40)
)
brief_data = st.one_of(
    # Anything in any field.
    st.fixed_dictionaries(
        {"business": field_value, "event": field_value, "place": field_value},
        optional=_optional_fields,
    ),
    # Required fields that pass, so the hostile optional ones and the logo get judged.
    st.fixed_dictionaries(
        {"business": printable, "event": printable, "place": printable},
        optional={
            "url": _optional_fields["url"],
            "details": st.one_of(printable, field_value),
            "brand": st.fixed_dictionaries({}, optional={"logo": logo_value}),
        },
    ),
)

EXAMPLES = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def attempt(
    call: Callable[[], T], catch: type[BaseException] = HyperlocalError
) -> tuple[T | None, BaseException | None]:
    """Return ``(result, None)``, or ``(None, error)`` for a ``catch``; others propagate."""
    try:
        return call(), None
    except catch as exc:
        return None, exc


def one_line(error: BaseException) -> str:
    """Assert ``error`` is a ``HyperlocalError`` with a one-line message; return it."""
    assert isinstance(error, HyperlocalError), f"not a clear error: {error!r}"
    message = str(error)
    assert message.strip(), repr(error)
    assert len(message.splitlines()) == 1, message
    assert "Traceback" not in message
    return message


# -- the folders a brief's assets may come from -----------------------------------------------


@dataclass(frozen=True)
class AssetTree:
    """A brief folder, an allowed asset folder, and files outside both."""

    briefs: Path
    assets: Path
    outside: Path

    @property
    def allowed(self) -> list[Path]:
        """The allowed folders besides the brief's own."""
        return [self.assets]

    def inside(self, path: Path) -> bool:
        """Whether ``path`` (resolved) is inside the brief folder or an allowed folder."""
        real = path.resolve()
        return any(real.is_relative_to(root.resolve()) for root in (self.briefs, self.assets))


def _png_file(path: Path) -> None:
    Image.new("RGB", (8, 8), "#336699").save(path, format="PNG")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> AssetTree:
    """Create briefs/ (logo, symlinks out), assets/ (shared logo) and outside/ (a secret)."""
    root = tmp_path_factory.mktemp("hostile")
    briefs, assets, outside = root / "briefs", root / "assets", root / "outside"
    for folder in (briefs, assets, outside, briefs / "sub"):
        folder.mkdir()
    _png_file(briefs / "logo.png")
    _png_file(assets / "shared.png")
    _png_file(outside / "secret.png")
    os.symlink(outside / "secret.png", briefs / "link.png")
    os.symlink(outside, briefs / "linkdir")
    return AssetTree(briefs=briefs, assets=assets, outside=outside)


# -- validation: generated data ----------------------------------------------------------------


@EXAMPLES
@given(data=brief_data)
def test_any_brief_data_is_a_brief_or_one_clear_line(tree: AssetTree, data: dict[str, Any]) -> None:
    brief, error = attempt(
        lambda: validate_brief(data, "brief.json", base_dir=tree.briefs, allowed_dirs=tree.allowed)
    )
    if error is not None:
        event(f"refused: {type(error).__name__}")
        one_line(error)
        assert isinstance(error, BriefError | AssetError)
        return
    event("accepted")
    assert brief is not None
    # A brief that validates keeps its promises.
    for name in ("business", "event", "place"):
        value = getattr(brief, name)
        assert isinstance(value, str)
        assert value.strip()
    if brief.url is not None:
        assert brief.url.lower().startswith(("http://", "https://"))
    if brief.brand.logo is not None:
        assert brief.brand.logo.is_file()
        assert tree.inside(brief.brand.logo), brief.brand.logo
        assert not brief.brand.logo.resolve().is_relative_to(tree.outside)


BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "business: *d\nevent: *d\nplace: *d\n"
)
brief_file = st.one_of(
    st.tuples(st.sampled_from([".json", ".yaml"]), brief_data),
    st.tuples(st.sampled_from([".toml", ".json", ".yaml", ".yml"]), st.text(max_size=200)),
    st.tuples(st.sampled_from([".toml", ".json", ".yaml"]), st.binary(max_size=200)),
    st.tuples(st.sampled_from([".yaml"]), st.just(BILLION_LAUGHS)),
    st.tuples(st.sampled_from([".json"]), st.just('{"business": "' + "x" * 300_000 + '"}')),
    st.tuples(st.sampled_from([".txt", ".py", ""]), st.just("business = 'x'")),
)


@EXAMPLES
@given(case=brief_file)
def test_any_brief_file_is_a_brief_or_one_clear_line(
    tree: AssetTree, case: tuple[str, Any]
) -> None:
    suffix, content = case
    path = tree.briefs / f"generated{suffix}"
    if isinstance(content, dict):
        text = (
            json.dumps(content)
            if suffix == ".json"
            else yaml.safe_dump(content, allow_unicode=True)
        )
        path.write_text(text, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    try:
        brief, error = attempt(lambda: load_brief(path, allowed_dirs=tree.allowed))
    finally:
        path.unlink()
    if error is not None:
        event(f"refused: {type(error).__name__}")
        assert str(path) in one_line(error)
        return
    event("accepted")
    assert isinstance(brief, Brief)
    if brief.brand.logo is not None:
        assert tree.inside(brief.brand.logo)


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".json", '{"business": ' + "[" * 5000 + "]" * 5000 + "}"),
        (".toml", "business = " + "[" * 5000 + "]" * 5000),
        (".yaml", "business: " + "[" * 5000 + "]" * 5000),
    ],
)
def test_a_deeply_nested_brief_file_is_one_clear_brief_error(
    tmp_path: Path, suffix: str, text: str
) -> None:
    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    _, error = attempt(lambda: load_brief(path), catch=Exception)
    assert error is not None, "a brief nested 5000 levels deep was accepted"
    assert isinstance(error, BriefError), type(error).__name__
    one_line(error)


# -- QR codes: only http(s) links ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "JavaScript:alert(document.cookie)",
        "  javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "data:image/png;base64,iVBORw0KGgo=",
        "FTP://example.com/file",
        "FILE:///etc/passwd",
        "vbscript:msgbox(1)",
        "mailto:someone@example.com",
        "//example.com/path",
        "https:example.com",
        "http:/example.com",
        "http://",
        "https://exa mple.com",
        "https://example.com/\u2028javascript:alert(1)",
        "https://example.com/\x00",
    ],
)
def test_only_http_links_pass_validation_and_nothing_else_becomes_a_qr_code(url: str) -> None:
    base = {"business": "Cafe", "event": "Open mic", "place": "Here"}
    with pytest.raises(BriefError) as refused:
        validate_brief({**base, "url": url}, "brief.toml")
    assert "url" in one_line(refused.value)


host = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=20)
#: Link tails of any printable non-space characters.
tail = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Zs", "Zl", "Zp"]),
    max_size=40,
)
links = st.builds(
    lambda scheme, name, rest: f"{scheme}://{name}{rest}",
    st.sampled_from(["http", "https", "HTTP", "Https"]),
    host,
    tail,
)


@EXAMPLES
@given(url=links)
def test_every_http_link_a_brief_accepts_becomes_a_qr_code(url: str) -> None:
    base = {"business": "Cafe", "event": "Open mic", "place": "Here"}
    brief, error = attempt(lambda: validate_brief({**base, "url": url}, "brief.toml"))
    if error is not None:
        assert isinstance(error, BriefError)
        one_line(error)
        return
    assert brief is not None
    assert brief.url is not None
    # Accepted is a promise: the flyer will carry it, so the QR maker must not refuse it.
    svg = qr_svg(brief.url)
    assert svg.lstrip().startswith("<svg")


@pytest.mark.parametrize("url", ["http://[::1", "https://shop]example.com/x"])
def test_a_link_with_an_unbalanced_bracket_is_refused_by_validation_or_the_qr_maker(
    url: str,
) -> None:
    base = {"business": "Cafe", "event": "Open mic", "place": "Here"}
    brief, error = attempt(lambda: validate_brief({**base, "url": url}, "brief.toml"))
    if error is None:
        assert brief is not None
        assert brief.url is not None
        link = brief.url
        _, error = attempt(lambda: qr_svg(link), catch=Exception)
    # Refused by one of them, with one clear line: never printed as a QR code.
    assert error is not None, f"{url!r} was accepted and made into a QR code"
    one_line(error)


# -- asset paths that try to escape -----------------------------------------------------------


def test_a_logo_through_a_symlinked_folder_pointing_outside_is_refused(tree: AssetTree) -> None:
    data = {"business": "B", "event": "E", "place": "P", "brand": {"logo": "linkdir/secret.png"}}
    with pytest.raises(AssetError) as refused:
        validate_brief(data, "brief.toml", base_dir=tree.briefs, allowed_dirs=tree.allowed)
    assert "outside the allowed folders" in one_line(refused.value)


@pytest.mark.parametrize(
    "logo",
    ["lo\x00go.png", "a" * 5000 + ".png", "a/" * 3000 + "x.png"],
    ids=["nul", "long", "deep"],
)
def test_an_unusable_logo_name_is_one_clear_asset_error(tree: AssetTree, logo: str) -> None:
    data = {"business": "B", "event": "E", "place": "P", "brand": {"logo": logo}}
    _, error = attempt(
        lambda: validate_brief(data, "brief.json", base_dir=tree.briefs, allowed_dirs=tree.allowed),
        catch=Exception,
    )
    assert error is not None, "a logo that cannot exist was accepted"
    assert isinstance(error, BriefError | AssetError), repr(error)
    one_line(error)


@pytest.mark.slow
def test_the_flow_refuses_a_brief_whose_logo_escapes_even_when_given_the_model_directly(
    prefect_env: str, tree: AssetTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment (UI form, API) hands the flow a ``Brief`` that no loader checked."""
    from flows.flyer import flyer

    monkeypatch.setenv("HYPERLOCAL_ASSET_DIRS", json.dumps([str(tree.assets)]))
    escaping = [
        tree.outside / "secret.png",  # absolute, outside
        Path("../outside/secret.png"),  # relative to the asset folder, escaping it
        Path("../briefs/link.png"),  # inside by name, a symlink pointing outside
    ]
    for logo in escaping:
        brief = Brief(business="B", event="E", place="P", brand=BrandKit(logo=logo))
        with pytest.raises(AssetError) as refused:
            flyer(brief=brief, variants=1, formats=["square"])
        message = one_line(refused.value)
        assert "brand.logo" in message
    assert not (Path(os.environ["HYPERLOCAL_OUTPUT_DIR"]) / "flyer_runs").exists()


# -- rendering: payloads print literally, nothing is read ----------------------------------------


@pytest.fixture(scope="module")
def background() -> GeneratedImage:
    """A small builtin picture for every render."""
    return painted(
        seed=3, width=192, height=248, zone=place_design(FORMATS["letter"], "frosted").text_zone
    )


@pytest.fixture(scope="module")
def digest() -> str:
    """The template digest a render request carries."""
    return template_digest()


def squashed(text: str) -> str:
    """``text`` in NFKC without whitespace: line breaks and spacing do not matter."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def pdf_text(pdf: bytes | None) -> str:
    """The text a reader extracts from a PDF."""
    assert pdf is not None
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def render(brief: Brief, background: GeneratedImage, digest: str, fmt: str) -> RenderedFlyer:
    """Builtin copy for ``brief``, typeset in ``fmt`` the way the flow does (fonts as the run)."""
    copy = BuiltinCopywriter().write_copy(CopyRequest(brief=brief, variant=1, variants=1))
    request = RenderRequest(
        variant=1,
        format=fmt,
        copy=copy,
        brief=brief,
        background=background,
        heading_font=font_library().resolve(brief.brand.heading_font or "Fjalla One"),
        body_font=font_library().resolve(brief.brand.body_font or "Source Sans Pro"),
        print_ppi=72,
        template=DEFAULT_TEMPLATE,
        template_digest=digest,
    )
    return render_flyer.fn(request)


def test_typst_and_markdown_in_a_brief_print_literally_and_never_run(
    tree: AssetTree, background: GeneratedImage, digest: str
) -> None:
    data = {
        "business": '#read("/etc/passwd")',
        "event": "#panic(1) *bold* $x$",
        "place": '#include "/etc/passwd" and #include "/data.json"',
        "date": '#import "/etc/passwd": *',
        "time": "$x^2$ `raw` <lbl> @lbl",
        "price": "#sys.inputs \\ [x](y)",
        "call_to_action": '#image("/etc/passwd")',
        "url": "https://example.com/?q=%23read(%22/etc/passwd%22)",
    }
    brief = validate_brief(data, "brief.json", base_dir=tree.briefs, allowed_dirs=tree.allowed)
    flyer = render(brief, background, digest, "letter")
    text = squashed(pdf_text(flyer.pdf))
    for name in ("business", "place", "date", "time", "price", "call_to_action"):
        assert squashed(data[name]) in text, name
    assert PASSWD_MARK not in text
    if PASSWD.is_file():
        first = PASSWD.read_text(errors="replace").splitlines()[0]
        assert squashed(first) not in text
    assert "headline_max" not in text  # the job's own data.json was not read either


render_text = st.one_of(
    st.sampled_from(PAYLOADS),
    st.text(alphabet=SAFE_ALPHABET, min_size=1, max_size=40),
    st.text(alphabet=SAFE_ALPHABET, min_size=1, max_size=40),
    st.text(min_size=1, max_size=12),  # any code point: often one no font can draw
)
renderable_brief = st.fixed_dictionaries(
    {"business": printable, "event": printable, "place": printable},
    optional={
        "details": st.lists(render_text, max_size=4).map("\n".join),
        "date": render_text,
        "time": render_text,
        "price": render_text,
        "audience": render_text,
        "tone": st.sampled_from(["friendly", "bold", "elegant", "playful", "calm"]),
        "call_to_action": render_text,
        "url": links,
        "brand": st.fixed_dictionaries(
            {},
            optional={
                "logo": st.sampled_from(["logo.png", "../outside/secret.png", "link.png"]),
                "heading_font": st.sampled_from(["Lato", "../../etc/passwd", "Fjalla One"]),
            },
        ),
    },
)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=renderable_brief)
def test_a_hostile_brief_renders_a_literal_flyer_or_fails_with_one_clear_line(
    tree: AssetTree, background: GeneratedImage, digest: str, data: dict[str, Any]
) -> None:

    def validate_and_render() -> tuple[Brief, RenderedFlyer]:
        brief = validate_brief(data, "brief.json", base_dir=tree.briefs, allowed_dirs=tree.allowed)
        return brief, render(brief, background, digest, "half_letter")

    made, error = attempt(validate_and_render)
    if error is not None:
        event(f"refused: {type(error).__name__}")
        one_line(error)
        return
    event("rendered")
    assert made is not None
    brief, flyer = made
    assert flyer.png
    text = squashed(pdf_text(flyer.pdf))
    assert PASSWD_MARK not in text
    assert squashed(brief.place) in text
    assert squashed(brief.business) in text


def test_a_logo_file_that_is_not_a_picture_is_one_clear_error(
    tree: AssetTree, background: GeneratedImage, digest: str, tmp_path: Path
) -> None:
    fake = tree.briefs / "fake.png"
    fake.write_text("root:x:0:0:root:/root:/bin/bash\n")
    data = {"business": "B", "event": "E", "place": "P", "brand": {"logo": "fake.png"}}
    try:
        # Refused from its header when the brief is read ...
        with pytest.raises(AssetError) as refused:
            validate_brief(data, "brief.json", base_dir=tree.briefs, allowed_dirs=tree.allowed)
        assert "brand.logo: fake.png is not a picture" in one_line(refused.value)
        # ... and by the renderer, for a brief that no loader checked.
        brief = Brief(business="B", event="E", place="P", brand=BrandKit(logo=fake))
        with pytest.raises(HyperlocalError) as refused:
            render(brief, background, digest, "half_letter")
        one_line(refused.value)
    finally:
        fake.unlink()


# -- pictures from outside: pixels limited before decoding ---------------------------------------


def giant_png(width: int, height: int) -> bytes:
    """Return a valid black 1-bit PNG of ``width`` x ``height``: a few KB, huge when decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte "none", then the packed pixels
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A 20000x20000 px PNG (400 MP, about 60 KB): decoded, it took 30 s and 1 GB."""
    return giant_png(20000, 20000)


def test_a_logo_of_too_many_pixels_is_refused_from_its_header(tree: AssetTree, bomb: bytes) -> None:
    (tree.briefs / "bomb.png").write_bytes(bomb)
    data = {"business": "B", "event": "E", "place": "P", "brand": {"logo": "bomb.png"}}
    started = time.perf_counter()
    try:
        with pytest.raises(AssetError) as refused:
            validate_brief(data, "brief.json", base_dir=tree.briefs, allowed_dirs=tree.allowed)
    finally:
        (tree.briefs / "bomb.png").unlink()
    assert time.perf_counter() - started < 2, "the logo was decoded"
    assert one_line(refused.value) == (
        "brief.json: brand.logo: 20000x20000 px is more than the 40 MP a logo may have: "
        "use a smaller picture"
    )


@pytest.mark.parametrize(
    ("size", "refused"),
    [((8000, 5000), False), ((8001, 5000), True), ((12000, 9000), True)],
    ids=["at-the-limit", "one-column-over", "between-the-limit-and-pillows"],
)
def test_the_logo_limit_is_40_megapixels(
    tmp_path: Path, size: tuple[int, int], refused: bool
) -> None:
    assert MAX_LOGO_PIXELS == 40_000_000
    logo = tmp_path / "logo.png"
    logo.write_bytes(giant_png(*size))
    if not refused:
        assert resolve_asset(Path("logo.png"), tmp_path, []) == logo.resolve()
        return
    # The same check serves the flow's parameter (the UI form, the API): flows.flyer calls it.
    with pytest.raises(AssetError, match=rf"^{size[0]}x{size[1]} px is more than the 40 MP"):
        resolve_asset(Path("logo.png"), tmp_path, [])


def test_an_image_server_picture_of_too_many_pixels_is_refused_before_decoding(
    bomb: bytes,
) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidImage) as refused:
        decode_png(base64.b64encode(bomb).decode(), 1024, 1024)
    assert time.perf_counter() - started < 2
    assert one_line(refused.value) == (
        "the image server sent 20000x20000 px, more than the 16.8 MP a background may have"
    )


def test_decoding_a_picture_of_too_many_pixels_is_refused_before_decoding(bomb: bytes) -> None:
    with pytest.raises(InvalidImage, match=r"20000x20000 px, more than the 16\.8 MP"):
        decode_picture(bomb, "RGB", "the background")


# -- long texts: every cut is noted ------------------------------------------------------------

LONG_BRIEF = Brief(
    business="Rosie's Bakery",
    event="Sourdough, rye and spelt bread baking for complete beginners in the old town hall",
    details=(
        "Mix and knead your own dough with a baker who has done it for thirty years and "
        "loves to share every trick. Shape two loaves. Bake them in our oven. Take them home."
    ),
    place="12 Market Street",
    audience="curious home bakers of every age and level",
    call_to_action="Book your place at the counter or online before Friday night",
)


def test_every_text_the_builtin_copywriter_shortens_is_noted_with_its_length() -> None:
    from backends.work_log import WorkLog

    notes: set[str] = set()
    for variant in (1, 2, 3, 4):
        log = WorkLog()
        copy = BuiltinCopywriter().write_copy(
            CopyRequest(brief=LONG_BRIEF, variant=variant, variants=4), log
        )
        variant_notes = log.record().cuts
        notes |= set(variant_notes)
        # Whatever was shortened on the flyer is in the notes, with its original length.
        assert copy.call_to_action != LONG_BRIEF.call_to_action
        assert any(n.startswith("call to action cut from 60 to ") for n in variant_notes)
        if copy.headline.endswith("…"):
            assert any(n.startswith("headline cut from ") for n in variant_notes), variant_notes
    text = "\n".join(sorted(notes))
    # "{event}" leads the announcement: the event's length is the headline's.
    assert f"headline cut from {len(LONG_BRIEF.event)} to " in text
    assert "body point 1 cut from 105 to " in text  # the details' first sentence
    assert "body points: 3 of 5 printed, left out: 'Take them home', " in text


def test_the_command_line_summary_lists_the_copywriters_cuts() -> None:
    from backends.work_log import WorkLog
    from flows.work_summary import work_lines
    from hyperlocal.models.manifest import RunManifest, StepRecord

    log = WorkLog()
    BuiltinCopywriter().write_copy(CopyRequest(brief=LONG_BRIEF, variant=1, variants=1), log)
    step = StepRecord(step="write_copy", variant=1, cached=False, seconds=0.1, work=log.record())
    lines = work_lines(RunManifest.model_construct(steps=[step]))
    printed = [text for kind, text in lines if kind == "note"]
    assert any("call to action cut from 60 to " in line for line in printed), lines
    assert any(f"headline cut from {len(LONG_BRIEF.event)} to " in line for line in printed)
    # A re-run takes the copy from the cache, and still says what the flyer had cut.
    cached = step.model_copy(update={"cached": True})
    again = [text for kind, text in work_lines(RunManifest.model_construct(steps=[cached]))]
    assert any("(cached): call to action cut from 60 to " in line for line in again), again


# -- the command line -----------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CLI_CASES: dict[str, Any] = {
    "number-for-business": {"business": 42, "event": "Open mic", "place": "Here"},
    "list-for-business": {"business": ["Cafe", "Bar"], "event": "Open mic", "place": "Here"},
    "brief-is-a-list": [{"business": "Cafe", "event": "Open mic", "place": "Here"}],
    "logo-escapes": {
        "business": "Cafe",
        "event": "Open mic",
        "place": "Here",
        "brand": {"logo": "../../../../../../../etc/passwd.png"},
    },
    "logo-with-nul": {
        "business": "Cafe",
        "event": "Open mic",
        "place": "Here",
        "brand": {"logo": "lo\x00go.png"},
    },
    # Not data: the brief path is a FIFO with no writer (opening it used to block forever).
    "brief-is-a-fifo": None,
}


@dataclass(frozen=True)
class CliResult:
    """One finished command-line run."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliResult]:
    """Run ``python -m flows.flyer --brief <file>`` for every case, all at once."""
    root = tmp_path_factory.mktemp("hostile-cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYPERLOCAL_", "SDXL_"))}
    env.update(
        HYPERLOCAL_CONFIG=str(root / "no-such.toml"),
        HYPERLOCAL_CACHE_DIR=str(root / "cache"),
        HYPERLOCAL_OUTPUT_DIR=str(root / "output"),
        HYPERLOCAL_ASSET_DIRS=json.dumps([str(PROJECT_ROOT / "examples")]),
        # A brief that wrongly passed would reach the flow: fail fast, start no server.
        PREFECT_API_URL=f"http://127.0.0.1:{_closed_port()}/api",
    )
    running = {}
    for name, data in CLI_CASES.items():
        path = root / f"{name}.json"
        if data is None:
            os.mkfifo(path)
        else:
            path.write_text(json.dumps(data))
        running[name] = subprocess.Popen(
            [sys.executable, "-m", "flows.flyer", "--brief", str(path)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {}
    for name, process in running.items():
        try:
            out, err = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        results[name] = CliResult(process.returncode, out, err)
    return results


def _assert_one_clear_line(result: CliResult) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert "internal error" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert result.returncode == 2, output
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("number-for-business", "business"),
        ("list-for-business", "business"),
        ("brief-is-a-list", "not list"),
        ("logo-escapes", "outside the allowed folders"),
    ],
)
def test_a_brief_of_the_wrong_shape_exits_2_with_one_line_on_the_command_line(
    cli_results: dict[str, CliResult], case: str, words: str
) -> None:
    line = _assert_one_clear_line(cli_results[case])
    assert words in line
    assert "/etc/passwd" not in cli_results[case].stdout


@pytest.mark.slow
def test_a_logo_name_with_a_nul_byte_exits_2_with_one_line_on_the_command_line(
    cli_results: dict[str, CliResult],
) -> None:
    line = _assert_one_clear_line(cli_results["logo-with-nul"])
    assert "logo" in line


@pytest.mark.slow
def test_a_brief_path_that_is_a_fifo_exits_2_with_one_line_on_the_command_line(
    cli_results: dict[str, CliResult],
) -> None:
    line = _assert_one_clear_line(cli_results["brief-is-a-fifo"])
    assert "is a FIFO (named pipe), not a regular file" in line


def test_a_logo_swapped_for_a_giant_picture_after_the_brief_was_read_is_refused_at_render(
    tmp_path: Path,
) -> None:
    from hyperlocal.errors import AssetError
    from tests.test_typesetting import LETTER, render

    logo = tmp_path / "logo.png"
    # The brief was checked with a small logo; the file was replaced before rendering.
    logo.write_bytes(giant_png(20000, 20000))
    started = time.monotonic()
    with pytest.raises(AssetError, match="20000x20000 px is more than the 40 MP"):
        render(LETTER, logo_path=logo)
    assert time.monotonic() - started < 5  # refused from its header, never decoded
