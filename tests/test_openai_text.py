"""The OpenAI-compatible text backend against a scripted server of our own (offline, fast)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from pydantic import SecretStr
from pypdf import PdfReader

from backends import registry
from backends.base import ArtRequest, CopyRequest
from backends.openai_text import OpenAITextBackend
from backends.server_structured import PROMPT_ONLY
from backends.structured_output import ask_structured, extract_json
from backends.work_log import WorkLog
from hyperlocal.briefs.loading import load_brief
from hyperlocal.errors import (
    BackendBusy,
    BackendTimeout,
    BackendUnavailable,
    ConfigurationError,
    InvalidModelOutput,
)
from hyperlocal.models import (
    Brief,
    CopyDraft,
    FlyerCopy,
    ImagePrompt,
    RunManifest,
    WrittenCopy,
)
from hyperlocal.prompts.llm_tokens import ChatMessage
from hyperlocal.settings import Settings, TextSettings
from tests.scripted_openai import (
    Recorded,
    Reply,
    ScriptedOpenAI,
    closed_port_url,
    completion,
    context_overflow,
    error_reply,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BRIEF_FILE = PROJECT_ROOT / "examples" / "briefs" / "bakery.toml"
KEY = "sk-test-very-secret-0123456789"

BRIEF = Brief(
    business="Rosie's Bakery",
    event="Sourdough for Beginners",
    details="Learn to mix, shape and bake your own loaf from scratch.",
    date="Saturday 14 March",
    time="10am – 1pm",
    place="12 Market Street, Hebden Bridge",
    price="£35 per person",
    audience="curious home bakers",
    call_to_action="Book your place",
)
REQUEST = CopyRequest(brief=BRIEF, variant=1, variants=2)

#: What the model writes: the copy without the facts, which code places from the brief.
COPY: dict[str, Any] = {
    "angle": "invitation",
    "headline": "Bake your first sourdough loaf",
    "subhead": "A hands-on morning at Rosie's Bakery",
    "body_points": ["Mix, shape and bake from scratch", "Take home a jar of starter"],
    "call_to_action": "Book your place",
    "fine_print": "Presented by Rosie's Bakery.",
}
FULL_COPY = FlyerCopy.from_draft(CopyDraft.model_validate(COPY), BRIEF)
ART: dict[str, Any] = {
    "phrases": [
        {"text": "sourdough loaves on a rustic wooden table", "role": "subject", "priority": 100},
        {"text": "warm editorial photograph", "role": "style", "priority": 80},
        {"text": "soft window light", "role": "lighting", "priority": 40},
    ],
    "negative": [{"text": "text, letters, watermark", "role": "quality", "priority": 100}],
}
COPY_JSON = json.dumps(COPY, ensure_ascii=False)


@pytest.fixture(autouse=True)
def forget_probes() -> Iterator[None]:
    """Every test starts with no remembered probe or speed (loopback ports get reused)."""
    OpenAITextBackend._format_support.clear()
    OpenAITextBackend._rates.clear()
    yield
    OpenAITextBackend._format_support.clear()
    OpenAITextBackend._rates.clear()


@pytest.fixture
def restore_builders() -> Iterator[None]:
    saved = dict(registry._BUILDERS)
    yield
    registry._BUILDERS.clear()
    registry._BUILDERS.update(saved)
    registry.clear()


def backend(url: str, **options: Any) -> OpenAITextBackend:
    options.setdefault("model", "test-model")
    options.setdefault("timeout_s", 5)
    return OpenAITextBackend(url, **options)


# -- extracting and re-asking ---------------------------------------------------------------


def test_valid_json_copy_comes_back_as_flyer_copy_with_the_settings_sent() -> None:
    with ScriptedOpenAI([completion(COPY_JSON)]) as server:
        copy = backend(server.url, seed=11, max_tokens=600).write_copy(REQUEST)
    assert copy == FULL_COPY
    (sent,) = server.chat_requests
    assert sent.body["model"] == "test-model"
    assert sent.body["temperature"] == 0.7
    assert sent.body["seed"] == 11
    assert sent.body["max_tokens"] == 600
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    # This server honours json_schema (the probe saw a conforming answer): the schema
    # goes with the request and stays out of the prompt.
    assert sent.body["response_format"]["type"] == "json_schema"
    assert sent.body["response_format"]["json_schema"]["name"] == "CopyDraft"
    assert sent.body["response_format"]["json_schema"]["strict"] is False
    assert '"properties"' not in sent.system
    assert sent.streamed
    assert "authorization" not in sent.headers


@pytest.mark.parametrize(
    "answer",
    [
        f"Here is the copy you asked for:\n{COPY_JSON}\nI hope it helps!",
        f"Sure.\n```json\n{COPY_JSON}\n```\nDone.",
        f"<think>The brief wants {{braces}} and facts kept.</think>\n{COPY_JSON}",
        f"reasoning without an opening tag</think>```\n{COPY_JSON}\n```",
    ],
    ids=["prose", "fenced", "think-block", "dangling-think-close"],
)
def test_json_is_found_in_prose_fences_and_after_reasoning(answer: str) -> None:
    with ScriptedOpenAI([completion(answer)]) as server:
        assert backend(server.url).write_copy(REQUEST).headline == COPY["headline"]


def test_extraction_copes_with_braces_inside_strings_and_skips_non_objects() -> None:
    text = 'first [1, 2] then {"a": "x } y", "b": {"c": 1}} and {"d": 2}'
    assert extract_json(text) == {"a": "x } y", "b": {"c": 1}}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ('<think>still thinking about {"a": 1}', "only <think> reasoning"),
        ("no json here at all", "no JSON object"),
        ('{"headline": "cut off', "incomplete or malformed"),
    ],
)
def test_extraction_fails_with_a_short_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidModelOutput, match=reason):
        extract_json(text)


def test_a_variant_that_names_another_price_is_re_asked_with_the_fact_error() -> None:
    wrong = json.dumps({**COPY, "body_points": ["Only £30 per person"]}, ensure_ascii=False)
    with ScriptedOpenAI([completion(wrong), completion(COPY_JSON)]) as server:
        copy = backend(server.url).write_copy(REQUEST)
    assert copy.price == "£35 per person"
    first, second = server.chat_requests
    assert len(second.messages) == len(first.messages) + 2
    assert second.messages[-2] == {"role": "assistant", "content": wrong}
    follow_up = second.messages[-1]["content"]
    assert follow_up.startswith("That answer was rejected")
    assert "'£30'" in follow_up
    assert "'£35 per person'" in follow_up


def test_a_schema_violation_is_re_asked_with_the_field_named() -> None:
    too_long = json.dumps({**COPY, "headline": "x" * 90})
    with ScriptedOpenAI([completion(too_long), completion(COPY_JSON)]) as server:
        backend(server.url).write_copy(REQUEST)
    assert (
        "headline: String should have at most 70 characters"
        in (server.chat_requests[1].messages[-1]["content"])
    )


def test_junk_forever_fails_after_three_attempts_with_one_line() -> None:
    junk = "I am sorry, I cannot help with flyers today.\n" * 10
    with ScriptedOpenAI([completion(junk)]) as server, pytest.raises(InvalidModelOutput) as info:
        backend(server.url).write_copy(REQUEST)
    message = str(info.value)
    assert "\n" not in message
    assert "after 3 attempts" in message
    assert "I am sorry, I cannot help" in message
    assert "no JSON object" in message
    assert len(message) < 400
    assert len(server.chat_requests) == 3


def test_an_empty_or_cut_off_answer_is_bad_output_and_re_asked() -> None:
    cut = completion(COPY_JSON[:40], finish_reason="length")
    with ScriptedOpenAI([completion(""), cut, completion(COPY_JSON)]) as server:
        assert backend(server.url).write_copy(REQUEST).headline == COPY["headline"]
    third = server.chat_requests[2].messages[-1]["content"]
    assert "cut off at 800 tokens" in third


def test_ask_structured_runs_without_any_server() -> None:
    answers = iter(["nothing", '{"angle": "a"}', COPY_JSON])
    seen: list[int] = []

    def ask(messages: list[ChatMessage]) -> str:
        seen.append(len(messages))
        return next(answers)

    draft = ask_structured(ask, [ChatMessage(role="user", content="hi")], CopyDraft, attempts=3)
    assert draft.headline == COPY["headline"]
    # Only the latest rejected answer is quoted back: the conversation does not grow.
    assert seen == [1, 3, 3]


def test_art_direction_comes_back_as_an_image_prompt() -> None:
    with ScriptedOpenAI([completion(json.dumps(ART))]) as server:
        request = ArtRequest(brief=BRIEF, copy=FULL_COPY, variant=1)
        art = backend(server.url).direct_art(request)
    assert art == ImagePrompt.model_validate(ART)
    assert server.chat_requests[0].body["response_format"]["json_schema"]["name"] == "ArtDraft"


# -- structured output probing --------------------------------------------------------------


def test_a_server_that_ignores_the_schema_is_found_out_and_prompted_with_it() -> None:
    # mlx_lm.server accepts response_format and answers prose: the probe sees the prose.
    prose = completion(f"Of course! The flyer:\n{COPY_JSON}")
    with ScriptedOpenAI([prose], schemas="ignore") as server:
        texts = backend(server.url)
        log = WorkLog()
        assert texts.write_copy(REQUEST, log) == FULL_COPY
        texts.write_copy(REQUEST)
        assert texts.structured_output() == PROMPT_ONLY
    # Asked once, both dialects of an unknown server, no question about JSON in it.
    assert [p.response_format["type"] for p in server.probes] == ["json_schema", "json_object"]
    assert all("json" not in p.messages[-1]["content"].lower() for p in server.probes)
    assert all(p.body["max_tokens"] <= 64 for p in server.probes)
    # The answers are not held to the schema, so the prompt carries it.
    assert all("response_format" not in r.body for r in server.chat_requests)
    assert all('"properties"' in r.system for r in server.chat_requests)
    work = log.record()
    assert work.structured_output == "prompt only (server ignores schemas)"
    assert "structured-output probe: json_schema ignored; json_object schema ignored" in (
        work.notes
    )


def test_a_preset_tries_only_its_own_dialects() -> None:
    with ScriptedOpenAI([completion(COPY_JSON)], schemas="ignore") as server:
        backend(server.url, provider="mlx_lm").write_copy(REQUEST)
    assert len(server.probes) == 1


@pytest.mark.parametrize("provider", [None, "llamacpp"])
def test_a_llama_cpp_server_is_found_to_honour_json_object_with_a_schema(
    provider: str | None,
) -> None:
    with ScriptedOpenAI([completion(COPY_JSON)], schemas="json_object_schema") as server:
        texts = backend(server.url, provider=provider)
        log = WorkLog()
        assert texts.write_copy(REQUEST, log) == FULL_COPY
        health = texts.health()
    assert texts.structured_output() == "server json_object schema"
    assert log.record().structured_output == "server json_object schema"
    if provider is None:
        # json_schema first: llama-cpp-python's request validation refuses it (HTTP 422).
        assert "json_schema refused (HTTP 422" in health.detail
        assert len(server.probes) == 2
    else:
        assert len(server.probes) == 1
    assert "json_object schema honoured" in health.detail
    sent = server.chat_requests[0]  # the copy (health's one-token request comes after)
    assert sent.body["response_format"] == {
        "type": "json_object",
        "schema": CopyDraft.model_json_schema(),
    }
    assert '"properties"' not in sent.system


@pytest.mark.parametrize("message", ["No Metal back-end is available", "internal error"])
def test_a_server_that_500s_on_response_format_is_probed_once_then_prompted_plainly(
    message: str,
) -> None:
    def script(request: Recorded) -> Reply:
        if "response_format" in request.body:
            return error_reply(500, message)
        return completion(COPY_JSON)

    with ScriptedOpenAI(script, schemas=None) as server:
        texts = backend(server.url)
        for _ in range(3):
            assert texts.write_copy(REQUEST).headline == COPY["headline"]
        assert texts.structured_output() == PROMPT_ONLY
        # A second backend for the same server and model learns nothing again.
        backend(server.url).write_copy(REQUEST)
    # vllm-mlx and mlx_vlm.server on a CPU: every dialect refused, once.
    chats = server.chat_requests
    assert ["response_format" in r.body for r in chats] == [True, True, False, False, False, False]
    assert all(r.is_probe for r in chats[:2])


def test_a_schema_refused_after_a_good_probe_falls_back_to_the_prompt() -> None:
    def script(request: Recorded) -> Reply:
        if "response_format" in request.body:
            return error_reply(400, "response_format: unsupported schema keyword 'maxLength'")
        return completion(COPY_JSON)

    with ScriptedOpenAI(script) as server:
        texts = backend(server.url)
        log = WorkLog()
        assert texts.write_copy(REQUEST, log) == FULL_COPY
        texts.write_copy(REQUEST)
    first, second, third = server.chat_requests
    assert "response_format" in first.body
    # The prompt was written for a constrained answer: the schema is added to it.
    assert "response_format" not in second.body
    assert '"properties"' in second.system
    assert "response_format" not in third.body
    assert texts.structured_output() == PROMPT_ONLY
    assert any("refused a full schema (HTTP 400" in note for note in log.record().notes)


def test_a_server_that_is_down_is_a_passing_fault_and_no_verdict() -> None:
    texts = backend(closed_port_url())
    with pytest.raises(BackendUnavailable):
        texts.write_copy(REQUEST)
    assert texts.structured_output() == "not probed"


# -- faults -------------------------------------------------------------------------------


def test_503_is_a_passing_fault_and_the_next_call_succeeds() -> None:
    script = [error_reply(503, "model is loading"), completion(COPY_JSON)]
    with ScriptedOpenAI(script) as server:
        texts = backend(server.url)
        with pytest.raises(BackendBusy, match="HTTP 503"):
            texts.write_copy(REQUEST)
        assert texts.write_copy(REQUEST).headline == COPY["headline"]


@pytest.mark.slow
def test_the_prefect_task_retries_a_503_and_succeeds(
    prefect_env: str, restore_builders: None, tmp_path: Path
) -> None:
    from tasks.copywriting import write_copy

    script = [error_reply(503, "busy"), completion(COPY_JSON)]
    with ScriptedOpenAI(script) as server:
        texts = backend(server.url)
        registry.register("text", "builtin", lambda settings: texts)
        retrying = write_copy.with_options(
            retries=2, retry_delay_seconds=0, refresh_cache=True, result_storage=tmp_path
        )

        @flow
        def one_copy() -> WrittenCopy:
            return retrying(REQUEST, Settings())

        written = one_copy()
    assert written.copy_ == FULL_COPY
    assert len(server.chat_requests) == 2
    # The answer's own attempt: one request (the probe was made by the attempt that failed).
    assert written.work.writer == "openai:test-model"
    assert written.work.structured_output == "server json_schema"
    assert written.work.requests == 1


def test_a_slow_server_is_a_timeout_within_about_a_second() -> None:
    with ScriptedOpenAI([completion(COPY_JSON, delay_s=3)]) as server:
        started = time.monotonic()
        with pytest.raises(BackendTimeout, match=r"within 0\.5 s"):
            backend(server.url, timeout_s=0.5).write_copy(REQUEST)
        assert time.monotonic() - started < 2.5  # the answer would take 3 s


def test_a_stalled_stream_fails_after_the_silence_and_the_server_sees_it_closed() -> None:
    stalled = completion(COPY_JSON, stall_after=3)
    with ScriptedOpenAI([stalled]) as server:
        texts = backend(server.url, timeout_s=0.5)
        texts.structured_output_probe()
        log = WorkLog()
        started = time.monotonic()
        with pytest.raises(BackendTimeout) as info:
            texts.write_copy(REQUEST, log)
        waited = time.monotonic() - started
        # The server notices the client leaving: it stops generating.
        assert server.client_closed.wait(10)
        assert server.wait_idle(10)
    message = str(info.value)
    assert "\n" not in message
    assert "HYPERLOCAL_TEXT__TIMEOUT_S" in message
    assert "within 0.5 s (3 tokens so far)" in message
    assert waited >= 0.5  # three tokens came at once, then the whole silence
    assert [r.ending for r in server.chat_requests] == ["client closed"]
    work = log.record()
    assert work.requests == 1
    assert work.tokens_estimated


def test_a_retry_after_a_stall_leaves_no_abandoned_generation_running() -> None:
    script = [completion(COPY_JSON, stall_after=2), completion(COPY_JSON)]
    with ScriptedOpenAI(script) as server:
        texts = backend(server.url, timeout_s=0.5)
        with pytest.raises(BackendTimeout):
            texts.write_copy(REQUEST)
        # What Prefect does next: the same call again.
        assert texts.write_copy(REQUEST) == FULL_COPY
        assert server.wait_idle(10)
        endings = [r.ending for r in server.chat_requests]
    # The abandoned answer ended because the client closed it, before the server stopped;
    # only the retry generated to the end.
    assert endings == ["client closed", "finished"]


class Cancelled(BaseException):
    """Stands for a cancellation raised in the step's thread (Ctrl-C, a Prefect cancel)."""


def test_a_cancelled_call_closes_its_stream_and_the_server_stops_generating() -> None:
    def cancel_at(count: int) -> None:
        if count >= 3:
            raise Cancelled

    with ScriptedOpenAI([completion(COPY_JSON, endless=True)]) as server:
        texts = backend(server.url)
        with pytest.raises(Cancelled):
            texts.write_copy(REQUEST, WorkLog(on_tokens=cancel_at))
        assert server.client_closed.wait(10)
        assert server.wait_idle(10)
    assert [r.ending for r in server.chat_requests] == ["client closed"]


def test_an_answer_far_slower_than_the_measured_speed_runs_out_of_budget() -> None:
    fast = completion(COPY_JSON)
    # Each token well within the silence, but the whole far slower than before.
    slow = completion(COPY_JSON, token_delay_s=0.1, endless=True)
    with ScriptedOpenAI([fast, slow]) as server:
        texts = backend(server.url, timeout_s=2.0, max_tokens=16)
        texts.write_copy(REQUEST)
        with pytest.raises(BackendTimeout, match="HYPERLOCAL_TEXT__TIMEOUT_S") as info:
            texts.write_copy(REQUEST)
        assert server.client_closed.wait(10)
    assert "still coming after" in str(info.value)


@pytest.mark.parametrize(
    "reply",
    [
        context_overflow(2048, 2907),
        error_reply(400, "the request exceeds the available context size, try increasing it"),
        error_reply(400, "Requested tokens (2907) exceed context window of 2048"),
    ],
    ids=["openai-vllm", "llama-server", "llama-cpp-python"],
)
def test_a_conversation_that_outgrows_the_context_is_bad_output(reply: Reply) -> None:
    with (
        ScriptedOpenAI([reply]) as server,
        pytest.raises(InvalidModelOutput) as info,
    ):
        backend(server.url).write_copy(REQUEST)
    message = str(info.value)
    assert not isinstance(info.value, ConfigurationError)
    assert "\n" not in message
    assert "outgrew the server's context window" in message
    assert "HYPERLOCAL_TEXT__CONTEXT_WINDOW" in message


def test_connection_refused_is_unavailable_and_names_the_url() -> None:
    url = closed_port_url()
    with pytest.raises(BackendUnavailable) as info:
        backend(url).write_copy(REQUEST)
    assert f"{url}/chat/completions" in str(info.value)
    assert "is the server running?" in str(info.value)


def test_a_refused_key_is_a_configuration_error_asked_once_and_never_echoed() -> None:
    # Some servers echo the key they refused: it must not reach the message.
    refusal = error_reply(401, f"invalid api key {KEY}")
    with (
        ScriptedOpenAI([refusal]) as server,
        pytest.raises(ConfigurationError, match="HYPERLOCAL_TEXT__API_KEY") as info,
    ):
        backend(server.url, api_key=SecretStr(KEY)).write_copy(REQUEST)
    assert KEY not in str(info.value)
    assert len(server.chat_requests) == 1


def test_an_unknown_model_is_a_configuration_error_listing_what_the_server_offers() -> None:
    script = [error_reply(404, "The model `nope` does not exist")]
    with (
        ScriptedOpenAI(script, models=["llama-3.2-3b", "qwen2.5-7b"]) as server,
        pytest.raises(ConfigurationError) as info,
    ):
        backend(server.url, model="nope").write_copy(REQUEST)
    assert "model 'nope' is not available" in str(info.value)
    assert "llama-3.2-3b, qwen2.5-7b" in str(info.value)


def test_an_error_object_in_a_200_answer_is_busy_when_transient_else_bad_output() -> None:
    busy = Reply(200, {"error": {"message": "Server overloaded, try again"}})
    with ScriptedOpenAI([busy]) as server, pytest.raises(BackendBusy):
        backend(server.url).write_copy(REQUEST)
    broken = Reply(200, {"error": "grammar failed to compile"})
    with ScriptedOpenAI([broken]) as server, pytest.raises(InvalidModelOutput, match="grammar"):
        backend(server.url).write_copy(REQUEST)


# -- secrets, identity, settings ----------------------------------------------------------


def test_the_key_is_sent_as_bearer_and_is_in_no_message_repr_or_identity() -> None:
    with ScriptedOpenAI([completion(COPY_JSON)]) as server:
        url_with_user = server.url.replace("127.0.0.1", "user:pw@127.0.0.1")
        texts = backend(url_with_user, api_key=SecretStr(KEY))
        texts.write_copy(REQUEST)
    assert server.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"
    shown = repr(texts) + texts.identity.model_dump_json() + repr(server.chat_requests)
    assert KEY not in shown
    assert "pw@" not in repr(texts)
    with pytest.raises(BackendUnavailable) as info:
        backend(closed_port_url().replace("//", "//user:pw@"), api_key=KEY).write_copy(REQUEST)
    assert KEY not in str(info.value)
    assert "pw" not in str(info.value)


def test_identity_holds_model_and_sampling_but_no_url() -> None:
    texts = backend("http://user:pw@127.0.0.1:9/v1", temperature=0.2, seed=3, max_tokens=500)
    identity = texts.identity
    assert (identity.role, identity.kind, identity.model) == ("text", "openai", "test-model")
    assert identity.params == {"temperature": 0.2, "seed": 3, "max_tokens": 500}
    assert "127.0.0.1" not in identity.model_dump_json()


def test_without_a_model_the_servers_first_model_is_used_and_asked_once() -> None:
    with ScriptedOpenAI([completion(COPY_JSON)], models=["first", "second"]) as server:
        texts = OpenAITextBackend(server.url)
        texts.write_copy(REQUEST)
        texts.write_copy(REQUEST)
        assert texts.identity.model == "first"
    assert [r.method for r in server.requests].count("GET") == 1
    assert server.chat_requests[0].body["model"] == "first"
    assert [p.body["model"] for p in server.probes] == ["first"]


def test_from_settings_uses_the_provider_preset_and_needs_a_url() -> None:
    text = TextSettings(
        kind="openai", provider="ollama", model="llama3", api_key=SecretStr(KEY), temperature=0
    )
    texts = OpenAITextBackend.from_settings(text)
    assert repr(texts) == "OpenAITextBackend(url='http://127.0.0.1:11434/v1', model='llama3')"
    assert texts.identity.params["temperature"] == 0
    with pytest.raises(ConfigurationError, match="HYPERLOCAL_TEXT__BASE_URL"):
        OpenAITextBackend.from_settings(TextSettings(kind="openai"))


USAGE = {"prompt_tokens": 321, "completion_tokens": 54, "total_tokens": 375}


def test_usage_is_recorded_from_the_server_or_counted_when_missing() -> None:
    with ScriptedOpenAI([completion(COPY_JSON, usage=USAGE), completion(COPY_JSON)]) as server:
        texts = backend(server.url)
        texts.structured_output_probe()  # one request, its tokens counted here
        probe = texts.stats()
        texts.write_copy(REQUEST)
        after_first = texts.stats()
        assert after_first.prompt_tokens - probe.prompt_tokens == 321
        assert after_first.completion_tokens - probe.completion_tokens == 54
        texts.write_copy(REQUEST)
    stats = texts.stats()
    assert stats.requests == probe.requests + 2
    assert stats.estimated_requests == probe.estimated_requests + 1
    assert stats.prompt_tokens > after_first.prompt_tokens + 100
    assert stats.completion_tokens > after_first.completion_tokens + 20


def test_model_work_counts_every_request_its_tokens_and_the_re_ask() -> None:
    wrong = json.dumps({**COPY, "headline": "See you on Sunday"})
    script = [completion(wrong, usage=USAGE), completion(COPY_JSON, usage=USAGE)]
    with ScriptedOpenAI(script) as server:
        texts = backend(server.url)
        texts.structured_output_probe()
        log = WorkLog()
        assert texts.write_copy(REQUEST, log) == FULL_COPY
    work = log.record()
    assert work.writer == "openai:test-model"
    assert work.structured_output == "server json_schema"
    assert "structured-output probe: json_schema honoured" in work.notes
    assert work.requests == 2
    assert (work.prompt_tokens, work.completion_tokens) == (2 * 321, 2 * 54)
    assert not work.tokens_estimated
    assert len(work.reasks) == 1
    assert "Sunday" in work.reasks[0]
    assert work.seconds > 0


def test_the_step_that_probes_counts_the_probe_too() -> None:
    with ScriptedOpenAI([completion(COPY_JSON, usage=USAGE)]) as server:
        log = WorkLog()
        backend(server.url).write_copy(REQUEST, log)
        assert len(server.probes) == 1
    work = log.record()
    assert work.requests == 2
    assert work.prompt_tokens > 321
    assert work.tokens_estimated  # the probe's answer came without usage


def test_a_server_that_ignores_stream_options_has_its_tokens_counted_here() -> None:
    with ScriptedOpenAI([completion(COPY_JSON, usage=USAGE)], stream_usage=False) as server:
        texts = backend(server.url)
        texts.structured_output_probe()
        log = WorkLog()
        texts.write_copy(REQUEST, log)
    work = log.record()
    assert work.requests == 1
    assert work.tokens_estimated
    assert work.completion_tokens > 20
    assert server.chat_requests[0].streamed


def test_a_server_that_answers_a_plain_body_to_a_stream_request_still_works() -> None:
    with ScriptedOpenAI([completion(COPY_JSON, usage=USAGE)], streaming=False) as server:
        texts = backend(server.url)
        log = WorkLog()
        assert texts.write_copy(REQUEST, log) == FULL_COPY
        assert texts.structured_output() == "server json_schema"
    assert not server.chat_requests[0].streamed
    work = log.record()
    assert work.completion_tokens >= 54


def test_tokens_are_reported_as_they_stream_in() -> None:
    seen: list[int] = []
    with ScriptedOpenAI([completion(COPY_JSON)]) as server:
        texts = backend(server.url)
        texts.write_copy(REQUEST, WorkLog(on_tokens=seen.append))
    words = len(COPY_JSON.split())
    # One report per streamed token of the answer; the probe's tokens are not progress.
    assert seen == list(range(1, words + 1))


# -- health and concurrency ---------------------------------------------------------------


def test_health_reports_models_support_and_latency() -> None:
    with ScriptedOpenAI([completion("OK")], models=["test-model", "other"]) as server:
        health = backend(server.url).health()
        assert health.ok, health.detail
        assert health.models == ["test-model", "other"]
        assert "'test-model' offered" in health.detail
        # The probe's answer conformed to its schema: this server honours json_schema.
        assert "structured output server json_schema (probe: json_schema honoured)" in (
            health.detail
        )
        assert len(server.probes) == 1
        assert "response_format" not in server.chat_requests[0].body
        assert health.latency_s is not None
        assert server.chat_requests[0].body["max_tokens"] == 1


def test_health_probes_a_server_that_refuses_response_format() -> None:
    with ScriptedOpenAI([completion("OK")], schemas="refuse") as server:
        health = backend(server.url).health()
        assert health.ok, health.detail
        assert f"structured output {PROMPT_ONLY}" in health.detail
        assert "json_schema refused (HTTP 500: No Metal back-end" in health.detail
        assert "json_object schema refused (HTTP 500" in health.detail
        assert "response_format" not in server.chat_requests[0].body


def test_health_of_a_closed_port_is_not_ok_and_does_not_raise() -> None:
    health = backend(closed_port_url()).health()
    assert not health.ok
    assert "is the server running?" in health.detail


def test_concurrent_calls_reach_the_server_together() -> None:
    with ScriptedOpenAI([completion(COPY_JSON, delay_s=0.4)]) as server:
        texts = backend(server.url)
        results: list[FlyerCopy] = []
        threads = [
            threading.Thread(target=lambda v=v: results.append(texts.write_copy(REQUEST)))
            for v in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert len(results) == 4
    calls = server.chat_requests
    assert len(calls) == 4
    # Every request arrived before the first one was answered: nothing was serialized.
    assert max(r.arrived for r in calls) < min(r.finished or 0 for r in calls)
    # Four variants at once, one probe.
    assert len(server.probes) == 1


# -- the whole flow -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_full_flow_run_uses_the_servers_copy_in_manifest_and_pdf(
    prefect_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.flyer import flyer

    brief = load_brief(BRIEF_FILE, allowed_dirs=[PROJECT_ROOT / "examples"])

    def script(request: Recorded) -> Reply:
        if "art-direct" in request.system:
            return completion(json.dumps(ART))
        return completion(f"```json\n{COPY_JSON}\n```")

    with ScriptedOpenAI(script) as server:
        # Through the real settings and registry: what a user sets is what the run uses.
        monkeypatch.setenv("HYPERLOCAL_TEXT__KIND", "openai")
        monkeypatch.setenv("HYPERLOCAL_TEXT__BASE_URL", server.url)
        monkeypatch.setenv("HYPERLOCAL_TEXT__MODEL", "test-model")
        outcome = flyer(
            brief=brief, variants=1, formats=["letter"], assets_from=str(BRIEF_FILE.parent)
        )
    manifest = RunManifest.model_validate_json((outcome.folder / "manifest.json").read_text())
    assert manifest.variants[0].copy_.headline == COPY["headline"]
    assert manifest.backends["text"].kind == "openai"
    assert manifest.variants[0].art_direction == ImagePrompt.model_validate(ART)
    page = PdfReader(outcome.folder / "variant_01_letter.pdf").pages[0]
    assert COPY["headline"] in " ".join(page.extract_text().split())
    assert len(server.chat_requests) == 2
