"""The real flow end to end with the builtin backends, on a real Prefect server."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader
from rich.console import Console

from backends import registry
from backends.base import CheckRequest, Health, ImageRequest
from backends.builtin_image import BuiltinPainter
from backends.builtin_text import BuiltinCopywriter
from flows.flyer import flyer, report
from hyperlocal.briefs.loading import load_brief
from hyperlocal.errors import (
    BackendUnavailable,
    ConfigurationError,
    InvalidImage,
    InvalidModelOutput,
    PictureRejected,
)
from hyperlocal.models import BackendIdentity, Brief, GeneratedImage, QCReport, RunManifest
from hyperlocal.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BRIEF_FILE = PROJECT_ROOT / "examples" / "briefs" / "bakery.toml"

pytestmark = pytest.mark.slow


@pytest.fixture
def brief() -> Brief:
    return load_brief(BRIEF_FILE, allowed_dirs=[PROJECT_ROOT / "examples"])


@pytest.fixture
def restore_builders() -> Iterator[None]:
    saved = dict(registry._BUILDERS)
    yield
    registry._BUILDERS.clear()
    registry._BUILDERS.update(saved)
    registry.clear()


def _manifest(folder: Path) -> RunManifest:
    return RunManifest.model_validate_json((folder / "manifest.json").read_text())


def test_a_run_writes_every_flyer_the_contact_sheet_and_the_manifest(
    prefect_env: str, brief: Brief, isolated_env: Path
) -> None:
    outcome = flyer(brief=brief, assets_from=str(BRIEF_FILE.parent))
    folder = outcome.folder
    assert folder.parent == isolated_env / "output" / "flyer_runs"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [
            "variant_01_letter.pdf",
            "variant_01_letter.png",
            "variant_01_square.png",
            "variant_02_letter.pdf",
            "variant_02_letter.png",
            "variant_02_square.png",
            "contact_sheet.png",
            "manifest.json",
        ]
    )
    # Nothing half-written: no staging folder, no temporary files.
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]

    with Image.open(folder / "variant_01_letter.png") as letter:
        assert letter.size == (1275, 1650)
    with Image.open(folder / "variant_02_square.png") as square:
        assert square.size == (1080, 1080)
    page = PdfReader(folder / "variant_01_letter.pdf").pages[0]
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (612, 792)
    text = " ".join(page.extract_text().split())
    assert "Saturday 14 March" in text
    assert "£35 per person" in text

    manifest = _manifest(folder)
    assert manifest.brief == brief
    assert sorted(manifest.files) == names
    assert len(manifest.files) == 8
    assert [v.variant for v in manifest.variants] == [1, 2]
    assert manifest.variants[0].copy_.headline != manifest.variants[1].copy_.headline
    for variant in manifest.variants:
        assert [f.format for f in variant.formats] == ["letter", "square"]
        for fmt in variant.formats:
            assert fmt.prompt.token_count <= 77
            assert fmt.attempts
            assert all(a.qc is not None for a in fmt.attempts)
            assert fmt.qc_passed is True
            assert fmt.style.contrast >= 4.5
    seeds = {a.seed for v in manifest.variants for f in v.formats for a in f.attempts}
    assert len(seeds) == 2  # one per variant, shared by its formats
    assert set(manifest.backends) == {"text", "image", "vision"}
    assert manifest.backends["image"].kind == "builtin"
    assert manifest.computed_steps == len(manifest.steps) > 0
    assert all(step.seconds >= 0 for step in manifest.steps)
    assert manifest.model_calls == {"text": 4, "image": 4, "vision": 4}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.counted_backends", *args],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _calls(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("CALLS ")
    return dict(json.loads(last.removeprefix("CALLS ")))


def test_a_second_run_in_a_new_process_recomputes_nothing(
    prefect_env: str, isolated_env: Path
) -> None:
    first = _cli("--variants", "2")
    assert _calls(first) == {"write_copy": 2, "direct_art": 2, "generate": 4, "check": 4}

    second = _cli("--variants", "2")
    assert _calls(second) == {}
    assert "no model work was done" in second.stdout
    runs = sorted((isolated_env / "output" / "flyer_runs").iterdir())
    assert len(runs) == 2
    manifest = _manifest(runs[-1])
    assert manifest.computed_steps == 0
    assert all(step.cached for step in manifest.steps)
    assert manifest.model_calls == {"text": 0, "image": 0, "vision": 0}
    # The cached run made the same flyers.
    assert (runs[0] / "variant_01_letter.png").read_bytes() == (
        runs[1] / "variant_01_letter.png"
    ).read_bytes()


def test_fresh_recomputes_everything(prefect_env: str, isolated_env: Path) -> None:
    assert _calls(_cli("--variants", "1", "--format", "square"))
    assert _calls(_cli("--variants", "1", "--format", "square", "--fresh")) == {
        "write_copy": 1,
        "direct_art": 1,
        "generate": 1,
        "check": 1,
    }


def test_a_template_change_reruns_only_layout_and_publishing(
    prefect_env: str, brief: Brief, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = isolated_env / "flyer.typ"
    template.write_text((PROJECT_ROOT / "templates" / "flyer.typ").read_text())
    monkeypatch.setenv("HYPERLOCAL_LAYOUT__TEMPLATE", str(template))
    flyer(brief=brief, variants=1, assets_from=str(BRIEF_FILE.parent))

    template.write_text(template.read_text() + "\n// a designer's tweak\n")
    second = flyer(brief=brief, variants=1, assets_from=str(BRIEF_FILE.parent)).manifest
    recomputed = {step.step for step in second.steps if not step.cached}
    assert recomputed == {"render_flyer"}
    assert second.model_calls == {"text": 0, "image": 0, "vision": 0}


class _Flaky(BuiltinCopywriter):
    """Fails its first ``failures`` copy calls with ``error``, then works."""

    calls = 0

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error

    def write_copy(self, request: Any, log: Any = None) -> Any:
        type(self).calls += 1
        if type(self).calls <= self.failures:
            raise self.error
        return super().write_copy(request, log)


def _install_flaky(failures: int, error: Exception) -> type[_Flaky]:
    flaky = type("Flaky", (_Flaky,), {"calls": 0})

    def builder(settings: Settings) -> _Flaky:
        return flaky(failures, error)

    registry.register("text", "builtin", builder)
    return flaky


def test_a_passing_fault_is_retried_until_it_succeeds(
    prefect_env: str, brief: Brief, restore_builders: None
) -> None:
    flaky = _install_flaky(2, BackendUnavailable("connection refused by 127.0.0.1:9"))
    outcome = flyer(brief=brief, variants=1, formats=["square"], assets_from=str(BRIEF_FILE.parent))
    assert flaky.calls == 3
    assert (outcome.folder / "variant_01_square.png").is_file()
    # The step's record keeps the faults its earlier attempts were retried after.
    (step,) = [s for s in outcome.manifest.steps if s.step == "write_copy"]
    assert step.work is not None
    assert step.work.retries == ["connection refused by 127.0.0.1:9"] * 2


def test_a_configuration_error_is_not_retried(
    prefect_env: str, brief: Brief, restore_builders: None, isolated_env: Path
) -> None:
    flaky = _install_flaky(5, ConfigurationError("model 'nope' not found on the server"))
    with pytest.raises(ConfigurationError, match="model 'nope' not found"):
        flyer(brief=brief, variants=1, formats=["square"], assets_from=str(BRIEF_FILE.parent))
    assert flaky.calls == 1
    assert not (isolated_env / "output" / "flyer_runs").exists()


def test_bad_output_is_not_retried_by_the_task(
    prefect_env: str, brief: Brief, restore_builders: None
) -> None:
    flaky = _install_flaky(5, InvalidModelOutput("the model answered prose, not JSON"))
    with pytest.raises(InvalidModelOutput):
        flyer(brief=brief, variants=1, formats=["square"], assets_from=str(BRIEF_FILE.parent))
    assert flaky.calls == 1


class _Rejecting:
    """A vision check that rejects every picture, scoring later attempts higher."""

    identity = BackendIdentity(role="vision", kind="heuristic", model="always-rejects")

    def health(self) -> Health:
        return Health(role="vision", kind="heuristic", ok=True, detail="rejects everything")

    def check(self, request: CheckRequest, log: Any = None) -> QCReport:
        return QCReport(
            passed=False,
            score=float(request.image.attempt),
            reasons=["contains lettering"],
            backend=self.identity,
        )


def test_when_every_picture_fails_qc_the_best_is_shipped_flagged(
    prefect_env: str, brief: Brief, restore_builders: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register("vision", "heuristic", lambda settings: _Rejecting())
    monkeypatch.setenv("HYPERLOCAL_QC__MAX_ATTEMPTS", "3")
    outcome = flyer(brief=brief, variants=1, formats=["square"], assets_from=str(BRIEF_FILE.parent))
    record = outcome.manifest.variants[0].formats[0]
    assert record.qc_passed is False
    assert [a.attempt for a in record.attempts] == [1, 2, 3]
    assert len({a.seed for a in record.attempts}) == 3
    assert record.chosen_attempt == 3  # the best score
    assert all(a.qc is not None and a.qc.reasons == ["contains lettering"] for a in record.attempts)


class _SeedIgnoringPainter(BuiltinPainter):
    """A painter that reports one seed whatever it was asked (as some servers do)."""

    def generate(self, request: ImageRequest) -> GeneratedImage:
        return super().generate(request).model_copy(update={"seed": 7})


def test_the_chosen_picture_is_the_attempt_that_made_it_even_when_seeds_repeat(
    prefect_env: str, brief: Brief, restore_builders: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register("image", "builtin", lambda settings: _SeedIgnoringPainter())
    registry.register("vision", "heuristic", lambda settings: _Rejecting())
    monkeypatch.setenv("HYPERLOCAL_QC__MAX_ATTEMPTS", "3")
    outcome = flyer(brief=brief, variants=1, formats=["square"], assets_from=str(BRIEF_FILE.parent))
    record = outcome.manifest.variants[0].formats[0]
    assert {a.seed for a in record.attempts} == {7}
    # The third scored best; a lookup by seed would have named the first.
    assert record.chosen_attempt == 3


def test_when_every_picture_fails_qc_the_run_can_fail_instead(
    prefect_env: str, brief: Brief, restore_builders: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register("vision", "heuristic", lambda settings: _Rejecting())
    monkeypatch.setenv("HYPERLOCAL_QC__MAX_ATTEMPTS", "2")
    monkeypatch.setenv("HYPERLOCAL_QC__ON_EXHAUSTED", "fail")
    with pytest.raises(
        PictureRejected, match=r"all 2 pictures failed QC \(last: contains lettering"
    ):
        flyer(brief=brief, variants=1, formats=["square"], assets_from=str(BRIEF_FILE.parent))


def test_the_square_png_is_a_real_picture(prefect_env: str, brief: Brief) -> None:
    outcome = flyer(brief=brief, variants=1, formats=["square"], assets_from=str(BRIEF_FILE.parent))
    data = (outcome.folder / "variant_01_square.png").read_bytes()
    with Image.open(io.BytesIO(data)) as picture:
        colours = picture.convert("RGB").resize((64, 64)).getcolors(64 * 64)
    assert colours is not None
    assert len(colours) > 200


class _Down:
    """A vision backend whose server is down: every check is a passing fault."""

    identity = BackendIdentity(role="vision", kind="heuristic", model="down")
    calls = 0

    def health(self) -> Health:
        return Health(role="vision", kind="heuristic", ok=False, detail="down")

    def check(self, request: CheckRequest, log: Any = None) -> QCReport:
        type(self).calls += 1
        raise BackendUnavailable("cannot reach http://127.0.0.1:9/v1: is the server running?")


def test_a_vision_backend_down_after_retries_fails_the_run_by_default(
    prefect_env: str, brief: Brief, restore_builders: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = type("Down", (_Down,), {"calls": 0})
    registry.register("vision", "heuristic", lambda settings: down())
    monkeypatch.setenv("HYPERLOCAL_RETRY__ATTEMPTS", "2")
    with pytest.raises(BackendUnavailable, match="is the server running"):
        flyer(brief=brief, variants=1, formats=["square"], assets_from=str(BRIEF_FILE.parent))
    assert down.calls == 3  # the first try and two retries


def test_a_vision_backend_down_can_ship_the_picture_unchecked_and_flagged(
    prefect_env: str, brief: Brief, restore_builders: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register("vision", "heuristic", lambda settings: _Down())
    monkeypatch.setenv("HYPERLOCAL_RETRY__ATTEMPTS", "0")
    monkeypatch.setenv("HYPERLOCAL_QC__ON_UNAVAILABLE", "warn")
    outcome = flyer(brief=brief, variants=1, formats=["square"], assets_from=str(BRIEF_FILE.parent))
    record = outcome.manifest.variants[0].formats[0]
    assert record.qc_passed is None
    (attempt,) = record.attempts
    assert attempt.qc is None
    assert attempt.qc_error is not None
    assert "is the server running" in attempt.qc_error
    assert (outcome.folder / "variant_01_square.png").is_file()


class _Blotchy(BuiltinPainter):
    """A painter whose first ``bad`` pictures are 1x1 PNGs: a lying image server."""

    calls = 0

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.bad = bad

    def generate(self, request: ImageRequest) -> GeneratedImage:
        type(self).calls += 1
        image = super().generate(request)
        if type(self).calls > self.bad:
            return image
        out = io.BytesIO()
        Image.new("RGB", (1, 1), "black").save(out, format="PNG")
        return image.model_copy(update={"png": out.getvalue()})


def _install_blotchy(bad: int) -> type[_Blotchy]:
    blotchy = type("Blotchy", (_Blotchy,), {"calls": 0})
    registry.register("image", "builtin", lambda settings: blotchy(bad))
    return blotchy


@pytest.mark.parametrize("qc", ["true", "false"])
def test_an_unusable_picture_is_painted_again_with_the_next_seed(
    prefect_env: str,
    brief: Brief,
    restore_builders: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    isolated_env: Path,
    qc: str,
) -> None:
    monkeypatch.setenv("HYPERLOCAL_QC__ENABLED", qc)
    monkeypatch.setenv("HYPERLOCAL_QC__MAX_ATTEMPTS", "3")
    blotchy = _install_blotchy(bad=1)
    outcome = flyer(brief=brief, variants=1, formats=["square"], assets_from=str(BRIEF_FILE.parent))

    assert blotchy.calls == 2
    record = outcome.manifest.variants[0].formats[0]
    first, second = record.attempts
    assert first.image_error is not None
    assert "returned 1x1, not the requested" in first.image_error
    assert first.qc is None
    assert second.image_error is None
    assert first.seed != second.seed
    assert record.chosen_attempt == 2
    assert record.qc_passed is (True if qc == "true" else None)
    assert outcome.manifest.model_calls["image"] == 2
    painted = [s for s in outcome.manifest.steps if s.step == "generate_image"]
    assert [(s.attempt, s.error is not None) for s in painted] == [(1, True), (2, False)]
    assert "attempt 1" in caplog.text
    assert "painting again" in caplog.text
    with Image.open(outcome.folder / "variant_01_square.png") as picture:
        assert picture.size == (1080, 1080)
    # The command line's summary says so.
    shown = io.StringIO()
    report(Console(file=shown, width=300), outcome, 1.0)
    assert (
        "warning: variant 1 square: picture 1 was unusable and was painted again: the image "
        "backend returned 1x1, not the requested"
    ) in shown.getvalue()


def test_when_no_picture_is_usable_the_run_fails_with_one_line(
    prefect_env: str,
    brief: Brief,
    restore_builders: None,
    monkeypatch: pytest.MonkeyPatch,
    isolated_env: Path,
) -> None:
    monkeypatch.setenv("HYPERLOCAL_QC__MAX_ATTEMPTS", "2")
    blotchy = _install_blotchy(bad=5)
    with pytest.raises(InvalidImage) as info:
        flyer(brief=brief, variants=1, formats=["square"], assets_from=str(BRIEF_FILE.parent))
    assert blotchy.calls == 2  # bad output: repainted per attempt, never retried as a fault
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert message.startswith("variant 1 square: none of 2 pictures was usable (last: ")
    assert "1x1, not the requested" in message
    assert not (isolated_env / "output" / "flyer_runs").exists()


def test_a_polish_headline_is_set_in_a_font_that_draws_it_and_the_run_says_so(
    prefect_env: str, brief: Brief, isolated_env: Path
) -> None:
    polish = brief.model_copy(update={"event": "Świeży chleb na zakwasie"})
    outcome = flyer(
        brief=polish, variants=1, formats=["square"], assets_from=str(BRIEF_FILE.parent)
    )
    record = outcome.manifest.variants[0].formats[0]
    assert record.font_fallbacks == [
        "headline: Fjalla One cannot draw 'Ś', 'ż'; set in Source Sans Pro"
    ]
    assert outcome.folder.name.endswith("-swiezy-chleb-na-zakwasie")
    shown = io.StringIO()
    report(Console(file=shown, width=300), outcome, 1.0)
    assert (
        "note: variant 1 square: headline: Fjalla One cannot draw 'Ś', 'ż'; set in Source Sans Pro"
    ) in shown.getvalue()
