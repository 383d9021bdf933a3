"""mlx-vlm vision checks on a tiny random-weight model: in process, and behind mlx_vlm.server."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from backends.base import CheckRequest, VisionBackend
from backends.loaded_models import shared_models
from backends.mlx_vision import MlxVisionBackend, fold_conversation
from backends.openai_vision import OpenAIVisionBackend
from backends.work_log import WorkLog
from hyperlocal.errors import ConfigurationError, InvalidModelOutput
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS
from hyperlocal.models import GeneratedImage
from hyperlocal.prompts.llm_tokens import ChatMessage
from hyperlocal.settings import VisionSettings
from tests.pictures import painted
from tests.servers import RecordingTransport, mlx_vlm_server
from tests.tiny_models import build_tiny_mlx_vlm

ZONE = place_design(FORMATS["letter"], "frosted").text_zone
SUBJECT = "sourdough loaves on a rustic wooden table"
BOUNDED = r"^no valid VisionVerdict after 3 attempts: the model returned"


def blank() -> GeneratedImage:
    """Return a uniform grey picture: the heuristic screen rejects it as blank."""
    picture = painted()
    grey = Image.new("RGB", (picture.width, picture.height), (128, 128, 128))
    buffer = io.BytesIO()
    grey.save(buffer, format="PNG")
    return picture.model_copy(update={"png": buffer.getvalue()})


def check_request(image: GeneratedImage) -> CheckRequest:
    return CheckRequest(image=image, text_zone=ZONE, subject=SUBJECT, min_score=5.0)


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_mlx_vlm(tmp_path_factory.mktemp("tiny-mlx-vlm"))


@pytest.fixture(scope="module")
def picture() -> GeneratedImage:
    return painted()


def in_process(model: Path, **changes: object) -> MlxVisionBackend:
    settings = VisionSettings(kind="mlx", model=str(model), profile="fast", max_tokens=32)
    return MlxVisionBackend.from_settings(settings.model_copy(update=changes))


def test_the_backend_keeps_to_the_vision_protocol(tiny_vlm: Path) -> None:
    assert isinstance(in_process(tiny_vlm), VisionBackend)


def test_junk_answers_end_in_one_bounded_line_after_three_attempts(
    tiny_vlm: Path, picture: GeneratedImage
) -> None:
    with pytest.raises(InvalidModelOutput, match=BOUNDED) as caught:
        in_process(tiny_vlm).check(check_request(picture))
    assert "\n" not in str(caught.value)


def test_even_a_random_model_gives_a_valid_verdict_on_its_first_try(
    tiny_vlm: Path, picture: GeneratedImage
) -> None:
    # Random weights write junk; constrained decoding holds it to the verdict's schema.
    log = WorkLog()
    report = in_process(tiny_vlm, max_tokens=3000).check(check_request(picture), log)
    work = log.record()
    assert (work.requests, work.reasks) == (1, [])
    assert work.structured_output.startswith("constrained decoding")
    assert work.completion_tokens > 0
    assert report.backend.kind == "mlx"


def test_a_blank_picture_is_rejected_by_the_screen_without_loading_the_model(
    tmp_path: Path,
) -> None:
    # A model folder of its own: no other test can have loaded it.
    model = build_tiny_mlx_vlm(tmp_path / "never-loaded")
    backend = in_process(model)
    report = backend.check(check_request(blank()))
    assert not report.passed
    assert report.backend.kind == "heuristic"
    assert any("blank" in reason for reason in report.reasons)
    assert backend.key not in shared_models(16).loads


def test_the_model_is_loaded_once_for_many_checks_from_several_threads(
    tiny_vlm: Path, picture: GeneratedImage
) -> None:
    backends = [in_process(tiny_vlm), in_process(tiny_vlm)]
    failures: list[str] = []

    def check(backend: MlxVisionBackend) -> None:
        try:
            backend.check(check_request(picture))
        except InvalidModelOutput as exc:
            failures.append(str(exc))

    threads = [threading.Thread(target=check, args=(backends[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(failures) == 4  # junk every time, and no thread died of anything else
    assert shared_models(16).loads[backends[0].key] == 1


def test_identity_names_the_model_folder_and_the_picture_budget(tiny_vlm: Path) -> None:
    backend = in_process(tiny_vlm)
    identity = backend.identity
    assert (identity.role, identity.kind, identity.model) == ("vision", "mlx", tiny_vlm.name)
    assert len(identity.revision) == 12
    assert identity.params["profile"] == "fast"
    assert identity.params["max_pixels"] == 256 * 28 * 28
    assert identity.params["max_tokens"] == 32
    assert identity.params["heuristic"]
    assert str(tiny_vlm.parent) not in identity.model_dump_json()


def test_health_loads_the_model_and_times_one_token(tiny_vlm: Path) -> None:
    health = in_process(tiny_vlm).health()
    assert health.ok, health.detail
    assert health.latency_s is not None
    assert health.models == [str(tiny_vlm.resolve())]


def test_health_reports_a_folder_that_does_not_load_without_raising(
    tiny_vlm: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((tiny_vlm / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"not weights")
    health = in_process(broken).health()
    assert not health.ok
    assert "cannot load the mlx vision model" in health.detail


def test_a_missing_model_setting_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="HYPERLOCAL_VISION__MODEL"):
        MlxVisionBackend.from_settings(VisionSettings(kind="mlx"))


def test_a_folder_that_is_not_a_model_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError, match=r"not an mlx model folder.*HYPERLOCAL_VISION__MODEL"
    ):
        MlxVisionBackend.from_settings(VisionSettings(model=str(tmp_path)))


def test_a_model_name_that_is_not_a_local_folder_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not an mlx model folder"):
        MlxVisionBackend.from_settings(VisionSettings(model="mlx-community/Qwen2-VL-2B"))


def test_re_asks_are_folded_into_the_one_message_that_carries_the_picture() -> None:
    folded = fold_conversation(
        [
            ChatMessage(role="system", content="Answer in JSON."),
            ChatMessage(role="user", content="Check this picture."),
            ChatMessage(role="assistant", content="no\n\njson here"),
            ChatMessage(role="user", content="That answer was rejected: no JSON object."),
        ]
    )
    assert [m["role"] for m in folded] == ["system", "user"]
    assert folded[1]["content"] == (
        "Check this picture.\n\nYour previous answer was: no json here\n\n"
        "That answer was rejected: no JSON object."
    )


# -- the same model behind a real mlx_vlm.server, checked over HTTP -----------------------


@pytest.fixture(scope="module")
def vlm_server(tiny_vlm: Path) -> Iterator[str]:
    with mlx_vlm_server(tiny_vlm) as url:
        yield url


@pytest.mark.slow
def test_junk_from_a_real_vlm_server_ends_in_the_bounded_failure(
    vlm_server: str, tiny_vlm: Path, picture: GeneratedImage
) -> None:
    transport = RecordingTransport()
    backend = OpenAIVisionBackend(
        vlm_server,
        model=str(tiny_vlm),
        profile="fast",
        max_tokens=32,
        timeout_s=120,
        transport=transport,
    )
    try:
        with pytest.raises(InvalidModelOutput, match=BOUNDED) as caught:
            backend.check(check_request(picture))
        assert "\n" not in str(caught.value)
        chats = transport.chats()
    finally:
        backend.close()
    # mlx_vlm.server cannot hold an answer to a schema on a CPU (no Metal): each dialect an
    # unknown server may speak (json_schema, json_object with a schema) is probed once,
    # found not honoured and remembered, so the three attempts are plain requests.
    assert [c.structured for c in chats] == [True, True, False, False, False]
    assert [c.status for c in chats[2:]] == [200, 200, 200]


@pytest.mark.slow
def test_a_flyer_run_with_mlx_vision_follows_the_unavailable_policy(
    prefect_env: str, tiny_vlm: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    from backends import registry
    from flows.flyer import flyer
    from hyperlocal.models import Brief

    monkeypatch.setenv("HYPERLOCAL_VISION__MODEL", str(tiny_vlm))
    monkeypatch.setenv("HYPERLOCAL_VISION__MAX_TOKENS", "24")
    monkeypatch.setenv("HYPERLOCAL_VISION__PROFILE", "fast")
    monkeypatch.setenv("HYPERLOCAL_QC__ON_UNAVAILABLE", "warn")
    brief = Brief(business="Rosie's", event="Sourdough class", place="12 Market St")
    try:
        outcome = flyer(brief=brief, variants=1, formats=["square"])
    finally:
        registry.clear()
    assert outcome.manifest.backends["vision"].kind == "mlx"
    (attempt,) = outcome.manifest.variants[0].formats[0].attempts
    assert attempt.qc is None
    assert attempt.qc_error is not None
    assert attempt.qc_error.startswith("no valid VisionVerdict after 3 attempts")
    assert (outcome.folder / "variant_01_square.png").is_file()


@pytest.mark.slow
def test_a_flyer_run_against_a_junk_vlm_server_fails_with_one_line_by_default(
    prefect_env: str, vlm_server: str, tiny_vlm: Path, isolated_env: Path
) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "HYPERLOCAL_VISION__BASE_URL": vlm_server,
        "HYPERLOCAL_VISION__MODEL": str(tiny_vlm),
        "HYPERLOCAL_VISION__MAX_TOKENS": "24",
        "HYPERLOCAL_VISION__PROFILE": "fast",
    }
    result = subprocess.run(
        [sys.executable, "-m", "flows.flyer", "--variants", "1", "--format", "square"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bad model output: no valid VisionVerdict after 3 attempts")
    assert not (isolated_env / "output" / "flyer_runs").exists()
