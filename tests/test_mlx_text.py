"""mlx-lm in process, on a tiny random-weight model built at test time."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import registry
from backends.base import ArtRequest, CopyRequest
from backends.loaded_models import LoadedModels, shared_models
from backends.mlx_text import MlxTextBackend
from backends.work_log import WorkLog
from hyperlocal.errors import ConfigurationError, InvalidModelOutput
from hyperlocal.models import Brief, WrittenCopy
from hyperlocal.settings import TextSettings, load_settings
from tests.tiny_models import build_tiny_mlx_lm

BRIEF = Brief(business="Rosie's", event="Sourdough class", place="12 Market St", price="£35")


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_mlx_lm(tmp_path_factory.mktemp("tiny-mlx-lm"))


@pytest.fixture
def backend(tiny_lm: Path) -> MlxTextBackend:
    return MlxTextBackend.from_settings(TextSettings(model=str(tiny_lm), max_tokens=48))


def test_an_answer_cut_off_by_max_tokens_ends_in_one_clear_bounded_failure(
    backend: MlxTextBackend,
) -> None:
    log = WorkLog()
    with pytest.raises(InvalidModelOutput) as caught:
        backend.write_copy(CopyRequest(brief=BRIEF, variant=1, variants=1), log)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("no valid CopyDraft after 3 attempts")
    assert "cut off at 48 tokens" in message
    assert "HYPERLOCAL_TEXT__MAX_TOKENS" in message
    work = log.record()
    assert work.requests == 3
    assert len(work.reasks) == 2


def test_even_a_random_model_answers_valid_copy_on_its_first_try(tiny_lm: Path) -> None:
    # Random weights write junk, but constrained decoding holds it to the draft's schema:
    # one request, no re-ask, and the facts come from the brief, not from the model.
    backend = MlxTextBackend.from_settings(TextSettings(model=str(tiny_lm), max_tokens=3000))
    log = WorkLog()
    copy = backend.write_copy(CopyRequest(brief=BRIEF, variant=1, variants=1), log)
    work = log.record()
    assert (work.requests, work.reasks) == (1, [])
    assert work.structured_output.startswith("constrained decoding")
    assert work.writer == backend.identity.label
    assert work.prompt_tokens > 0
    assert work.completion_tokens > 0
    assert copy.where == BRIEF.place
    assert copy.price == (BRIEF.price or "")
    assert all(fact in copy.when for fact in (BRIEF.date, BRIEF.time) if fact)
    art_log = WorkLog()
    art = backend.direct_art(ArtRequest(brief=BRIEF, copy=copy, variant=1), art_log)
    assert art.phrases
    assert (art_log.record().requests, art_log.record().reasks) == (1, [])


def test_the_model_is_loaded_once_and_shared_by_every_backend(tiny_lm: Path) -> None:
    models = shared_models(16)
    key = f"mlx-lm:{tiny_lm.resolve()}"
    first = MlxTextBackend.from_settings(TextSettings(model=str(tiny_lm), max_tokens=16))
    second = MlxTextBackend.from_settings(TextSettings(model=str(tiny_lm), max_tokens=16))
    threads = [threading.Thread(target=b.health) for b in (first, second, first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert models.loads[key] == 1


def test_prompts_are_counted_with_the_model_own_tokenizer(backend: MlxTextBackend) -> None:
    counter = backend.counter()
    assert counter.name == f"tokenizer of {backend.folder.name}"
    # The tiny tokenizer knows few merges: far more tokens than cl100k would count.
    assert counter.count("Sourdough for Beginners at Rosie's") > 8


def test_identity_names_the_model_and_sampling_not_the_path(backend: MlxTextBackend) -> None:
    identity = backend.identity
    assert (identity.kind, identity.model) == ("mlx", backend.folder.name)
    assert len(identity.revision) == 12
    assert identity.params["max_tokens"] == 48
    assert str(backend.folder.parent) not in identity.model_dump_json()


def test_health_loads_the_model_and_times_one_token(backend: MlxTextBackend) -> None:
    health = backend.health()
    assert health.ok
    assert health.latency_s is not None


def test_a_missing_model_setting_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="HYPERLOCAL_TEXT__MODEL"):
        MlxTextBackend.from_settings(TextSettings(kind="mlx"))


def test_a_folder_that_is_not_a_model_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not an mlx model folder"):
        MlxTextBackend.from_settings(TextSettings(model=str(tmp_path)))


def test_an_unloadable_model_folder_is_a_configuration_error(tiny_lm: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_lm, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    backend = MlxTextBackend.from_settings(TextSettings(model=str(broken)))
    with pytest.raises(ConfigurationError, match="cannot load the mlx model"):
        backend.write_copy(CopyRequest(brief=BRIEF, variant=1, variants=1))


def test_auto_picks_mlx_for_a_local_model_folder(
    tiny_lm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPERLOCAL_TEXT__MODEL", str(tiny_lm))
    assert registry.resolve("text", load_settings()).kind == "mlx"


def test_least_recently_used_models_go_first_under_the_budget() -> None:
    models = LoadedModels(budget_bytes=100)
    models.get("a", lambda: "A", 40)
    models.get("b", lambda: "B", 40)
    models.get("a", lambda: "A again", 40)  # a is used again: b is now the oldest
    models.get("c", lambda: "C", 40)
    assert models.keys() == ["a", "c"]
    assert models.get("a", lambda: "reloaded", 40).value == "A"
    assert models.loads == {"a": 1, "b": 1, "c": 1}


@pytest.fixture
def mlx_env(tiny_lm: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HYPERLOCAL_TEXT__KIND", "mlx")
    monkeypatch.setenv("HYPERLOCAL_TEXT__MODEL", str(tiny_lm))
    monkeypatch.setenv("HYPERLOCAL_TEXT__MAX_TOKENS", "32")
    yield
    registry.clear()


@pytest.mark.slow
def test_a_flow_run_falls_back_to_the_builtin_copywriter_when_asked(
    prefect_env: str, mlx_env: None, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    from flows.flyer import flyer

    monkeypatch.setenv("HYPERLOCAL_TEXT__ON_INVALID_OUTPUT", "builtin")
    outcome = flyer(brief=BRIEF, variants=1, formats=["square"])
    (variant,) = outcome.manifest.variants
    # Once the model has failed the variant, the builtin copywriter writes all of it:
    # the model is not asked for the art direction of a variant it failed.
    assert [reason.split(":")[0] for reason in variant.text_fallbacks] == ["write_copy"]
    assert "no valid CopyDraft after 3 attempts" in variant.text_fallbacks[0]
    assert variant.copy_writer.startswith("builtin:")
    assert variant.art_writer.startswith("builtin:")
    assert outcome.manifest.backends["text"].kind == "mlx"
    failed, *rest = [s for s in outcome.manifest.steps if s.step == "write_copy"]
    assert failed.error
    assert failed.work is not None
    assert failed.work.writer.startswith("mlx:")
    assert failed.work.requests == 3
    assert len(failed.work.reasks) == 2
    assert [s.work.writer.split(":")[0] for s in rest if s.work] == ["builtin"]
    # Three model requests, then one builtin call for the copy and one for the art.
    assert outcome.manifest.model_calls["text"] == 5
    assert (outcome.folder / "variant_01_square.png").is_file()
    manifest = json.loads((outcome.folder / "manifest.json").read_text())
    assert manifest["variants"][0]["text_fallbacks"]


@pytest.mark.slow
def test_a_flow_run_without_fallback_fails_with_one_line(
    prefect_env: str, mlx_env: None, isolated_env: Path
) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "flows.flyer", "--variants", "1", "--format", "square"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bad model output: no valid CopyDraft after 3 attempts")
    assert "Traceback" not in result.stdout + result.stderr
    assert not (isolated_env / "output" / "flyer_runs").exists()


@pytest.mark.slow
def test_a_submitted_copy_step_reports_its_answer_growing_token_by_token(
    prefect_env: str, mlx_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Submitted like FlyerRun submits it (a task-runner thread), the step still reaches
    # the command line's progress listener with the tokens of its growing answer.
    from prefect import flow

    from tasks.copywriting import write_copy
    from tasks.progress import ProgressEvent, displayed

    monkeypatch.setenv("HYPERLOCAL_TEXT__MAX_TOKENS", "3000")

    @flow
    def copy_only() -> WrittenCopy:
        request = CopyRequest(brief=BRIEF, variant=2, variants=2)
        return write_copy.submit(request, load_settings()).result()

    events: list[ProgressEvent] = []
    with displayed(events.append):
        written = copy_only()
    grown = [e.tokens or 0 for e in events if e.state == "tokens"]
    assert len(grown) >= 2
    assert grown[1] > grown[0]
    assert {(e.step, e.variant) for e in events} == {("write_copy", 2)}
    assert written.work.writer.startswith("mlx:")
    assert written.work.completion_tokens >= max(grown)
