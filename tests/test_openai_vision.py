"""The OpenAI-compatible vision backend against a scripted server of our own (offline, fast)."""

from __future__ import annotations

import base64
import io
import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import SecretStr

from backends.base import CheckRequest, VisionBackend
from backends.openai_text import OpenAITextBackend
from backends.openai_vision import OpenAIVisionBackend
from backends.vision_images import (
    MIN_PIXELS,
    PATCH,
    VISION_PROFILES,
    data_uri,
    prepare_image,
    smart_size,
)
from backends.vision_verdict import VisionVerdict, to_report, verdict_messages
from backends.work_log import WorkLog
from hyperlocal.errors import (
    BackendBusy,
    BackendTimeout,
    BackendUnavailable,
    ConfigurationError,
    InvalidImage,
    InvalidModelOutput,
)
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS, Zone
from hyperlocal.models import BackendIdentity, GeneratedImage, QCReport
from hyperlocal.settings import VisionSettings
from tests.pictures import painted
from tests.scripted_openai import (
    Recorded,
    ScriptedOpenAI,
    closed_port_url,
    completion,
    context_overflow,
    error_reply,
)

KEY = "sk-vision-very-secret-0123456789"
ZONE = place_design(FORMATS["letter"], "frosted").text_zone
SUBJECT = "sourdough loaves on a rustic wooden table"
WIDTH, HEIGHT = 320, 416

PASSING: dict[str, Any] = {
    "has_text": False,
    "shows_subject": True,
    "text_zone_calm": True,
    "has_defects": False,
    "score": 8,
    "reason": "Warm loaves, clean background.",
}
PASSING_JSON = json.dumps(PASSING)


PICTURE = painted()


def check_request(image: GeneratedImage = PICTURE, min_score: float = 5.0) -> CheckRequest:
    return CheckRequest(image=image, text_zone=ZONE, subject=SUBJECT, min_score=min_score)


def backend(url: str, **options: Any) -> OpenAIVisionBackend:
    options.setdefault("model", "test-vlm")
    options.setdefault("timeout_s", 5)
    return OpenAIVisionBackend(url, **options)


def verdict_json(**changes: Any) -> str:
    return json.dumps({**PASSING, **changes})


def sent_png(request: Recorded) -> bytes:
    """Return the picture a recorded chat request carried, decoded from its data URI."""
    user = next(m for m in request.messages if m["role"] == "user")
    (image_part,) = [p for p in user["content"] if p["type"] == "image_url"]
    header, _, encoded = image_part["image_url"]["url"].partition(",")
    assert header == "data:image/png;base64"
    return base64.b64decode(encoded)


@pytest.fixture(autouse=True)
def forget_probes() -> Iterator[None]:
    """Every test starts with no remembered probe or speed (loopback ports get reused)."""
    OpenAITextBackend._format_support.clear()
    OpenAITextBackend._rates.clear()
    yield
    OpenAITextBackend._format_support.clear()
    OpenAITextBackend._rates.clear()


# -- preparing pictures ---------------------------------------------------------------------

sides = st.integers(min_value=1, max_value=6000)
profiles = st.sampled_from(sorted(VISION_PROFILES))


@settings(max_examples=400, deadline=None)
@given(width=sides, height=sides, profile=profiles)
def test_smart_size_gives_whole_patches_within_the_budget_keeping_the_aspect_ratio(
    width: int, height: int, profile: str
) -> None:
    budget = VISION_PROFILES[profile]
    if max(width, height) / min(width, height) > 200:
        with pytest.raises(ValueError, match="too long and thin"):
            smart_size(width, height, max_pixels=budget.max_pixels, min_pixels=MIN_PIXELS)
        return
    new_w, new_h = smart_size(width, height, max_pixels=budget.max_pixels, min_pixels=MIN_PIXELS)
    assert new_w % PATCH == 0
    assert new_h % PATCH == 0
    assert new_w >= PATCH
    assert new_h >= PATCH
    assert new_w * new_h <= budget.max_pixels
    if max(width, height) / min(width, height) <= 20:
        # Past that, a side clamped to one patch can leave the area short of the minimum.
        assert new_w * new_h >= MIN_PIXELS
        # Each side is the scaled side within one patch, so the ratio is off by rounding only.
        ratio = width / height
        assert ratio * (new_h - PATCH) - PATCH <= new_w <= ratio * (new_h + PATCH) + PATCH


def test_smart_size_matches_qwen2_vl_on_known_sizes() -> None:
    budget = VISION_PROFILES["balanced"].max_pixels
    # Already whole patches and inside the budget: unchanged.
    assert smart_size(448, 616, max_pixels=budget, min_pixels=MIN_PIXELS) == (448, 616)
    # 832x1216 is over 401,408 pixels: scaled by one factor, each side floored to patches.
    assert smart_size(832, 1216, max_pixels=budget, min_pixels=MIN_PIXELS) == (504, 756)
    # A tiny picture grows to the minimum, sides ceiled to patches.
    assert smart_size(64, 64, max_pixels=budget, min_pixels=MIN_PIXELS) == (224, 224)


def test_profiles_grow_in_budget_and_share_the_minimum() -> None:
    fast, balanced, quality = (VISION_PROFILES[n] for n in ("fast", "balanced", "quality"))
    assert fast.max_pixels < balanced.max_pixels < quality.max_pixels
    assert (fast.max_tokens, balanced.max_tokens, quality.max_tokens) == (256, 512, 1280)
    assert {p.min_pixels for p in VISION_PROFILES.values()} == {MIN_PIXELS}


@settings(max_examples=15, deadline=None)
@given(
    width=st.integers(min_value=40, max_value=1400),
    height=st.integers(min_value=40, max_value=1400),
    profile=profiles,
)
def test_a_prepared_picture_is_a_png_of_the_smart_size(
    width: int, height: int, profile: str
) -> None:
    budget = VISION_PROFILES[profile]
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 120, 200, 128)).save(buffer, format="PNG")
    prepared = prepare_image(
        buffer.getvalue(), max_pixels=budget.max_pixels, min_pixels=budget.min_pixels
    )
    with Image.open(io.BytesIO(prepared)) as image:
        assert image.format == "PNG"
        assert image.mode == "RGB"
        assert image.size == smart_size(
            width, height, max_pixels=budget.max_pixels, min_pixels=budget.min_pixels
        )


def test_bytes_that_are_no_picture_raise_invalid_image() -> None:
    with pytest.raises(InvalidImage, match="does not decode"):
        prepare_image(b"not a picture", max_pixels=MIN_PIXELS * 4, min_pixels=MIN_PIXELS)
    with pytest.raises(InvalidImage, match="neither PNG nor JPEG"):
        data_uri(b"GIF89a")


def test_a_data_uri_is_typed_by_its_magic_number_and_decodes_back() -> None:
    uri = data_uri(PICTURE.png)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == PICTURE.png
    assert data_uri(b"\xff\xd8\xff\xe0jpeg").startswith("data:image/jpeg;base64,")


# -- the verdict ----------------------------------------------------------------------------

IDENTITY = BackendIdentity(role="vision", kind="openai", model="test-vlm")


def test_the_questions_name_the_subject_and_the_text_zone() -> None:
    system, user = verdict_messages(SUBJECT, Zone(x=0, y=0.6, w=1, h=0.4).describe())
    assert system.role == "system"
    assert "has_text" in system.content  # the schema travels with the question
    assert user.role == "user"
    assert json.dumps(SUBJECT) in user.content
    assert "the lower half" in user.content


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"has_text": True}, "text, letters, a logo or a watermark"),
        ({"shows_subject": False}, "does not see the subject"),
        ({"text_zone_calm": False}, "text zone busy"),
        ({"has_defects": True}, "distorted people or hands"),
        ({"score": 4}, "score 4 is below the minimum 5"),
    ],
)
def test_each_failed_question_fails_the_report_with_its_own_reason(
    change: dict[str, Any], reason: str
) -> None:
    report = to_report(VisionVerdict.model_validate({**PASSING, **change}), IDENTITY, 5.0, [])
    assert not report.passed
    assert len(report.reasons) == 1
    assert reason in report.reasons[0]


# -- checking pictures against a server -----------------------------------------------------


def test_the_backend_is_a_vision_backend() -> None:
    assert isinstance(backend("http://127.0.0.1:9/v1"), VisionBackend)


def test_a_picture_the_model_says_contains_text_fails_with_that_reason() -> None:
    with ScriptedOpenAI([completion(verdict_json(has_text=True, score=3))]) as server:
        report = backend(server.url).check(check_request())
    assert not report.passed
    assert report.score == 3
    assert any("text, letters, a logo or a watermark" in reason for reason in report.reasons)
    assert len(server.chat_requests) == 1


def test_a_passing_verdict_gives_a_passed_report_with_the_models_score_after_the_screen() -> None:
    with ScriptedOpenAI([completion(PASSING_JSON)]) as server:
        report = backend(server.url).check(check_request())
    assert report.passed
    assert report.score == 8
    assert report.reasons == []
    names = [check.name for check in report.checks]
    # The heuristic screen's checks come first, then one per question.
    assert names[0] == "size"
    assert names[-5:] == [
        "model_no_text",
        "model_subject",
        "model_zone_calm",
        "model_no_defects",
        "model_score",
    ]
    assert report.backend.kind == "openai"
    (sent,) = server.chat_requests
    assert sent.body["model"] == "test-vlm"
    assert sent.body["temperature"] == 0.0
    assert sent.body["response_format"]["json_schema"]["name"] == "VisionVerdict"


def test_a_blank_picture_is_rejected_by_the_heuristic_and_never_sent() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (WIDTH, HEIGHT), (128, 128, 128)).save(buffer, format="PNG")
    blank = PICTURE.model_copy(update={"png": buffer.getvalue()})
    with ScriptedOpenAI([completion(PASSING_JSON)]) as server:
        report = backend(server.url).check(check_request(blank))
    assert not report.passed
    assert report.backend.kind == "heuristic"
    assert any("blank" in reason for reason in report.reasons)
    assert server.requests == []


def test_the_data_uri_sent_decodes_to_a_png_of_the_prepared_size() -> None:
    with ScriptedOpenAI([completion(PASSING_JSON)]) as server:
        backend(server.url, profile="fast").check(check_request())
    (sent,) = server.chat_requests
    user = sent.messages[-1]
    assert [part["type"] for part in user["content"]] == ["image_url", "text"]
    with Image.open(io.BytesIO(sent_png(sent))) as image:
        assert image.format == "PNG"
        fast = VISION_PROFILES["fast"]
        assert image.size == smart_size(
            WIDTH, HEIGHT, max_pixels=fast.max_pixels, min_pixels=fast.min_pixels
        )


@pytest.mark.parametrize(
    "answer",
    [
        f"Here is my verdict:\n{PASSING_JSON}\nHope that helps.",
        f"<think>The loaves look fine, no text.</think>\n```json\n{PASSING_JSON}\n```",
    ],
)
def test_json_in_prose_or_after_reasoning_is_extracted(answer: str) -> None:
    with ScriptedOpenAI([completion(answer)]) as server:
        report = backend(server.url).check(check_request())
    assert report.passed
    assert report.score == 8


def test_junk_after_three_attempts_is_invalid_model_output_in_one_line() -> None:
    with (
        ScriptedOpenAI([completion("I like this picture a lot!")]) as server,
        pytest.raises(InvalidModelOutput, match="after 3 attempts") as info,
    ):
        backend(server.url).check(check_request())
    assert "\n" not in str(info.value)
    assert len(server.chat_requests) == 3
    # Every re-ask shows the model the picture again, with its answer and the reason.
    assert all(sent_png(request) for request in server.chat_requests)
    assert "was rejected" in server.chat_requests[-1].messages[-1]["content"]


def test_a_server_that_ignores_schemas_keeps_extraction_and_re_asks() -> None:
    prose = completion(f"My verdict, as you asked:\n{PASSING_JSON}")
    with ScriptedOpenAI([completion("Looks nice."), prose], schemas="ignore") as server:
        log = WorkLog()
        report = backend(server.url).check(check_request(), log)
    assert report.passed
    assert [p.response_format["type"] for p in server.probes] == ["json_schema", "json_object"]
    first, second = server.chat_requests
    assert "response_format" not in first.body
    assert "was rejected" in second.messages[-1]["content"]
    work = log.record()
    assert work.structured_output == "prompt only (server ignores schemas)"
    assert work.writer == "openai:test-vlm"
    assert work.requests == 2 + 2  # two probes, two answers
    assert len(work.reasks) == 1


def test_a_server_that_refuses_schemas_like_mlx_vlm_on_a_cpu_is_asked_plainly() -> None:
    with ScriptedOpenAI([completion(PASSING_JSON)], schemas="refuse") as server:
        vision = backend(server.url)
        assert vision.check(check_request()).passed
        assert vision.check(check_request()).passed
    assert len(server.probes) == 2
    assert all("response_format" not in r.body for r in server.chat_requests)


def test_a_llama_cpp_vision_server_gets_the_verdict_schema_as_json_object() -> None:
    with ScriptedOpenAI([completion(PASSING_JSON)], schemas="json_object_schema") as server:
        log = WorkLog()
        assert backend(server.url).check(check_request(), log).passed
    (sent,) = server.chat_requests
    assert sent.body["response_format"] == {
        "type": "json_object",
        "schema": VisionVerdict.model_json_schema(),
    }
    assert log.record().structured_output == "server json_object schema"


def test_a_stalled_verdict_names_the_vision_timeout_and_closes_the_stream() -> None:
    with ScriptedOpenAI([completion(PASSING_JSON, stall_after=2)]) as server:
        with pytest.raises(BackendTimeout) as info:
            backend(server.url, timeout_s=0.5).check(check_request())
        assert server.client_closed.wait(10)
    message = str(info.value)
    assert "HYPERLOCAL_VISION__TIMEOUT_S" in message
    assert "HYPERLOCAL_TEXT__" not in message
    assert "\n" not in message


def test_a_picture_that_overflows_the_context_is_bad_output_naming_the_profile() -> None:
    with (
        ScriptedOpenAI([context_overflow(4096, 5200)]) as server,
        pytest.raises(InvalidModelOutput, match="HYPERLOCAL_VISION__PROFILE") as info,
    ):
        backend(server.url).check(check_request())
    assert "outgrew the server's context window" in str(info.value)
    assert "HYPERLOCAL_TEXT__" not in str(info.value)


def test_503_is_backend_busy() -> None:
    with (
        ScriptedOpenAI([error_reply(503, "model loading")]) as server,
        pytest.raises(BackendBusy, match="HTTP 503"),
    ):
        backend(server.url).check(check_request())


def test_a_closed_port_is_backend_unavailable() -> None:
    url = closed_port_url()
    with pytest.raises(BackendUnavailable, match="is the server running"):
        backend(url).check(check_request())


def test_an_unknown_model_names_the_vision_setting() -> None:
    script = [error_reply(404, "The model `nope` does not exist")]
    with (
        ScriptedOpenAI(script, models=["qwen2-vl-7b"]) as server,
        pytest.raises(ConfigurationError, match="HYPERLOCAL_VISION__MODEL") as info,
    ):
        backend(server.url, model="nope").check(check_request())
    assert "qwen2-vl-7b" in str(info.value)
    assert "HYPERLOCAL_TEXT__" not in str(info.value)


def _check_from_threads(vision: OpenAIVisionBackend) -> list[QCReport]:
    reports: list[QCReport] = []
    threads = [
        threading.Thread(target=lambda: reports.append(vision.check(check_request())))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return reports


def test_four_checks_from_four_threads_overlap_at_the_server_with_four_in_flight() -> None:
    with ScriptedOpenAI([completion(PASSING_JSON, delay_s=0.3)]) as server:
        reports = _check_from_threads(backend(server.url, max_in_flight=4))
    assert len(reports) == 4
    calls = server.chat_requests
    assert len(calls) == 4
    # Every request arrived before the first one was answered: nothing was serialized.
    assert max(r.arrived for r in calls) < min(r.finished or 0 for r in calls)


def test_with_one_in_flight_the_checks_reach_the_server_one_after_another() -> None:
    with ScriptedOpenAI([completion(PASSING_JSON, delay_s=0.05)]) as server:
        reports = _check_from_threads(backend(server.url, max_in_flight=1))
    assert len(reports) == 4
    calls = sorted(server.chat_requests, key=lambda r: r.arrived)
    assert len(calls) == 4
    for earlier, later in itertools.pairwise(calls):
        assert later.arrived >= (earlier.finished or 0)


# -- secrets, identity, settings, health ----------------------------------------------------


def test_the_api_key_is_sent_as_bearer_and_is_in_no_error_repr_or_identity() -> None:
    with ScriptedOpenAI([completion(PASSING_JSON)]) as server:
        vision = backend(server.url, api_key=SecretStr(KEY))
        vision.check(check_request())
    assert server.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(vision) + vision.identity.model_dump_json()
    # A server that echoes the key it refused: the message names the setting, not the key.
    with (
        ScriptedOpenAI([error_reply(401, f"invalid api key {KEY}")]) as server,
        pytest.raises(ConfigurationError, match="HYPERLOCAL_VISION__API_KEY") as info,
    ):
        backend(server.url, api_key=KEY).check(check_request())
    assert KEY not in str(info.value)
    with pytest.raises(BackendUnavailable) as unreachable:
        backend(closed_port_url(), api_key=KEY).check(check_request())
    assert KEY not in str(unreachable.value)


def test_identity_holds_model_profile_and_budget_but_no_url() -> None:
    vision = backend("http://user:pw@127.0.0.1:9/v1", profile="quality")
    identity = vision.identity
    assert (identity.role, identity.kind, identity.model) == ("vision", "openai", "test-vlm")
    assert identity.params["profile"] == "quality"
    assert identity.params["max_pixels"] == VISION_PROFILES["quality"].max_pixels
    assert identity.revision
    assert "127.0.0.1" not in identity.model_dump_json()
    assert "pw" not in repr(vision)


def test_from_settings_needs_a_base_url_and_a_known_profile() -> None:
    with pytest.raises(ConfigurationError, match="HYPERLOCAL_VISION__BASE_URL"):
        OpenAIVisionBackend.from_settings(VisionSettings(kind="openai"))
    settings_ = VisionSettings(kind="openai", base_url="http://127.0.0.1:9/v1", model="m")
    built = OpenAIVisionBackend.from_settings(settings_, max_in_flight=2, profile="fast")
    assert (built.max_in_flight, built.profile.name, built.model) == (2, "fast", "m")
    with pytest.raises(ConfigurationError, match="HYPERLOCAL_VISION__PROFILE"):
        OpenAIVisionBackend.from_settings(settings_, profile="huge")
    with pytest.raises(ConfigurationError, match="HYPERLOCAL_VISION__MAX_IN_FLIGHT"):
        OpenAIVisionBackend.from_settings(settings_, max_in_flight=0)


def test_health_reports_models_structured_output_and_latency() -> None:
    with ScriptedOpenAI([completion("OK")], models=["test-vlm"]) as server:
        health = backend(server.url).health()
    assert health.ok
    assert health.role == "vision"
    assert health.models == ["test-vlm"]
    assert "structured output server json_schema (probe: json_schema honoured)" in (health.detail)
    assert health.latency_s is not None
    (one_token,) = server.chat_requests
    assert one_token.body["max_tokens"] == 1
    assert len(server.probes) == 1


def test_health_of_a_closed_port_is_not_ok_and_does_not_raise() -> None:
    health = backend(closed_port_url()).health()
    assert not health.ok
    assert health.role == "vision"
    assert "is the server running?" in health.detail
