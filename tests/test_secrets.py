"""Secrets: API keys and the image server's password reach the servers and nothing else.

A real run from the command line, against scripted text, vision and A1111
servers that first fail (HTTP 503 and a 200 answer with an error object, both
echoing the key back) and then answer, so the run goes through failures and
retries before it succeeds. The text and vision API keys and the image server's
password (``http://user:password@host`` for A1111's ``--api-auth``) are canary
values. Afterwards no canary may appear, raw or base64-encoded, in the command
line's output (with ``--verbose``, so Prefect's own log lines print too), in the
run's logs and artifacts read back from the Prefect server, in any file under
the output, cache or Prefect home folders (the server's database included),
or in the text of an exception. The servers' records show the canaries did
arrive, so a pass is not vacuous.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backends.a1111_image import A1111ImageBackend
from backends.base import ImageRequest
from backends.openai_text import OpenAITextBackend
from hyperlocal.errors import BackendBusy, ConfigurationError, HyperlocalError
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS
from hyperlocal.models import Brief, ImagePrompt, PromptPhrase, PromptSyntax
from hyperlocal.prompts.clip_tokens import clip_counter
from hyperlocal.prompts.fitting import fit_image_prompt
from tests.scripted_a1111 import ScriptedA1111, Step
from tests.scripted_openai import Recorded, Reply, ScriptedOpenAI, completion, error_reply

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEXT_KEY = "sk-CANARY-text-7f3a9b"
VISION_KEY = "sk-CANARY-vision-4c1d2e"
IMAGE_USER, IMAGE_PASSWORD = "painter", "pw-CANARY-image-9e8d7c"
# Set for the run but unused by its backends: they must not reach the manifest or logs either.
HF_TOKEN, DOWNLOAD_TOKEN = "hf_CANARY_models_3e1f", "dl-CANARY-models-8a2b"

BRIEF_FLAGS = {
    "business": "Rosie's Bakery",
    "event": "Sourdough for Beginners",
    "date": "Saturday 14 March",
    "time": "10am - 1pm",
    "place": "12 Market Street",
    "price": "£35 per person",
}
COPY: dict[str, Any] = {
    "angle": "invitation",
    "headline": "Bake your first sourdough loaf",
    "subhead": "A hands-on morning at Rosie's Bakery",
    "body_points": ["Mix, shape and bake from scratch"],
    "when": "Saturday 14 March · 10am - 1pm",
    "where": "12 Market Street",
    "price": "£35 per person",
    "call_to_action": "Book your place",
    "fine_print": "Presented by Rosie's Bakery.",
}
ART: dict[str, Any] = {
    "phrases": [
        {"text": "sourdough loaves on a rustic wooden table", "role": "subject", "priority": 100},
        {"text": "warm editorial photograph", "role": "style", "priority": 80},
    ],
    "negative": [{"text": "text, letters, watermark", "role": "quality", "priority": 100}],
}
VERDICT: dict[str, Any] = {
    "has_text": False,
    "shows_subject": True,
    "text_zone_calm": True,
    "has_defects": False,
    "score": 8,
    "reason": "Warm loaves, clean background.",
}


def forms(secret: str) -> list[bytes]:
    """The ways a secret could be written down: raw, base64, and in a Basic auth header."""
    raw = secret.encode()
    found = [raw, base64.b64encode(raw)]
    if secret == IMAGE_PASSWORD:
        found.append(base64.b64encode(f"{IMAGE_USER}:{IMAGE_PASSWORD}".encode()))
    return found


def leaks(places: dict[str, bytes], secret: str) -> list[str]:
    """Return the names of the places that hold ``secret`` in any of its forms."""
    return [name for name, data in places.items() if any(form in data for form in forms(secret))]


class FailingThenAnswering:
    """A text server script: a 503 and a 200 error that echo the key, then good answers."""

    def __init__(self, key: str, answer_for: Any) -> None:
        self.key = key
        self.answer_for = answer_for
        self.calls = 0

    def __call__(self, request: Recorded) -> Reply:
        self.calls += 1
        if self.calls == 1:
            return error_reply(503, f"model is loading; request by key {self.key}")
        if self.calls == 2:
            return Reply(
                200, {"error": {"message": f"server overloaded for {self.key}, try again"}}
            )
        return self.answer_for(request)


def _copy_or_art(request: Recorded) -> Reply:
    if "art-direct" in request.system:
        return completion(json.dumps(ART))
    return completion(json.dumps(COPY))


def _files(folder: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    if not folder.exists():
        return found
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            # A file may go while walking (the server's journal): skip it.
            with contextlib.suppress(OSError):
                found[f"file {path}"] = path.read_bytes()
    return found


@dataclass
class SecretRun:
    """What one command-line run left behind, and what its servers received."""

    returncode: int
    stdout: str
    stderr: str
    places: dict[str, bytes] = field(default_factory=dict)
    text_headers: list[str] = field(default_factory=list)
    vision_headers: list[str] = field(default_factory=list)
    image_headers: list[str] = field(default_factory=list)
    text_calls: int = 0
    vision_calls: int = 0
    image_calls: int = 0
    log_lines: list[str] = field(default_factory=list)
    artifact_keys: list[str] = field(default_factory=list)
    output_files: list[Path] = field(default_factory=list)
    #: Files of the Prefect server's home (its database) that hold the retried fault's text.
    server_files_with_the_fault: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def secret_run(
    prefect_api: str, prefect_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> SecretRun:
    """Run ``python -m flows.flyer`` once with canary secrets against failing-then-good servers."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTimestamp
    from prefect.client.schemas.sorting import LogSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = tmp_path_factory.mktemp("secrets")
    output, cache = root / "output", root / "cache"
    started = datetime.now(UTC) - timedelta(seconds=1)
    text_script = FailingThenAnswering(TEXT_KEY, _copy_or_art)
    vision_script = FailingThenAnswering(VISION_KEY, lambda r: completion(json.dumps(VERDICT)))
    with (
        ScriptedOpenAI(text_script) as text_server,
        ScriptedOpenAI(vision_script, models=["test-vlm"]) as vision_server,
        ScriptedA1111([Step(503, "busy"), Step()], auth=(IMAGE_USER, IMAGE_PASSWORD)) as painter,
    ):
        image_url = painter.url.replace("http://", f"http://{IMAGE_USER}:{IMAGE_PASSWORD}@")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HYPERLOCAL_", "SDXL_"))}
        env.update(
            PREFECT_API_URL=prefect_api,
            PREFECT_HOME=str(prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            # The run's log lines go to the server, where the test reads them back.
            PREFECT_LOGGING_TO_API_ENABLED="true",
            HYPERLOCAL_CONFIG=str(root / "no-such.toml"),
            HYPERLOCAL_CACHE_DIR=str(cache),
            HYPERLOCAL_OUTPUT_DIR=str(output),
            HYPERLOCAL_ASSET_DIRS=json.dumps([str(PROJECT_ROOT / "examples")]),
            HYPERLOCAL_RETRY__DELAY_S="0",
            HYPERLOCAL_TEXT__KIND="openai",
            HYPERLOCAL_TEXT__BASE_URL=text_server.url,
            HYPERLOCAL_TEXT__MODEL="test-model",
            HYPERLOCAL_TEXT__API_KEY=TEXT_KEY,
            HYPERLOCAL_VISION__KIND="openai",
            HYPERLOCAL_VISION__BASE_URL=vision_server.url,
            HYPERLOCAL_VISION__MODEL="test-vlm",
            HYPERLOCAL_VISION__API_KEY=VISION_KEY,
            HYPERLOCAL_IMAGE__KIND="a1111",
            HYPERLOCAL_IMAGE__API_URL=image_url,
            HYPERLOCAL_MODELS__HF_TOKEN=HF_TOKEN,
            HYPERLOCAL_MODELS__DOWNLOAD_TOKEN=DOWNLOAD_TOKEN,
            HF_HUB_OFFLINE="1",
        )
        flags = [f"--{name}={value}" for name, value in BRIEF_FLAGS.items()]
        flags += ["--variants=1", "--format=square", "--verbose"]
        result = subprocess.run(
            [sys.executable, "-m", "flows.flyer", *flags],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        run = SecretRun(result.returncode, result.stdout, result.stderr)
        run.text_headers = [r.headers.get("authorization", "") for r in text_server.chat_requests]
        run.vision_headers = [
            r.headers.get("authorization", "") for r in vision_server.chat_requests
        ]
        run.image_headers = [r.headers.get("authorization", "") for r in painter.txt2img_requests]
        run.text_calls, run.vision_calls = text_script.calls, vision_script.calls
        run.image_calls = len(painter.txt2img_requests)
    run.places = {"stdout": result.stdout.encode(), "stderr": result.stderr.encode()}
    # This process reads back from the session's server (never a temporary one).
    with temporary_settings({PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(timestamp=LogFilterTimestamp(after_=started)),
            limit=200,
            sort=LogSort.TIMESTAMP_ASC,
        )
        artifacts = client.read_artifacts(limit=200)
    for log in logs:
        run.log_lines.append(log.message)
        run.places[f"log {log.id}"] = f"{log.name} {log.message}".encode()
    for artifact in artifacts:
        if artifact.created and artifact.created >= started:
            run.artifact_keys.append(artifact.key or artifact.type or "")
        dumped = artifact.model_dump_json().encode()
        run.places[f"artifact {artifact.key or artifact.id}"] = dumped
    run.output_files = [p for p in output.rglob("*") if p.is_file()]
    for folder in (output, cache, prefect_home, root):
        run.places.update(_files(folder))
    run.server_files_with_the_fault = [
        name
        for name, data in run.places.items()
        if name.startswith(f"file {prefect_home}") and b"model is loading" in data
    ]
    return run


@pytest.mark.slow
def test_the_run_went_through_failures_and_retries_and_still_made_its_flyer(
    secret_run: SecretRun,
) -> None:
    """The premise: secrets were used, faults happened and were retried, the run succeeded."""
    assert secret_run.returncode == 0, secret_run.stdout + secret_run.stderr
    assert any(p.name == "manifest.json" for p in secret_run.output_files)
    assert secret_run.text_calls >= 4  # 503, 200 with an error, then copy and art direction
    assert secret_run.vision_calls >= 2  # 503, then the verdict
    assert secret_run.image_calls >= 2  # 503, then the picture
    assert any("HTTP 503" in line for line in secret_run.log_lines), "no retry reached the logs"
    assert secret_run.artifact_keys, "the run published no artifact"
    # The server's database is searched too, and it did record the echoing fault.
    assert secret_run.server_files_with_the_fault


@pytest.mark.slow
def test_the_api_keys_reach_their_servers_and_appear_nowhere_else(secret_run: SecretRun) -> None:
    assert secret_run.text_headers
    assert set(secret_run.text_headers) == {f"Bearer {TEXT_KEY}"}
    assert set(secret_run.vision_headers) == {f"Bearer {VISION_KEY}"}
    assert leaks(secret_run.places, TEXT_KEY) == []
    assert leaks(secret_run.places, VISION_KEY) == []
    # The common marker catches a canary cut short or re-encoded in some other way.
    marked = [name for name, data in secret_run.places.items() if b"CANARY-text" in data]
    marked += [name for name, data in secret_run.places.items() if b"CANARY-vision" in data]
    assert marked == []


@pytest.mark.slow
def test_the_image_server_password_reaches_the_server_and_appears_nowhere_else(
    secret_run: SecretRun,
) -> None:
    basic = "Basic " + base64.b64encode(f"{IMAGE_USER}:{IMAGE_PASSWORD}".encode()).decode()
    assert secret_run.image_headers
    assert set(secret_run.image_headers) == {basic}
    assert leaks(secret_run.places, IMAGE_PASSWORD) == []


@pytest.mark.slow
def test_the_model_download_tokens_appear_nowhere(secret_run: SecretRun) -> None:
    assert secret_run.returncode == 0, secret_run.stdout + secret_run.stderr
    assert leaks(secret_run.places, HF_TOKEN) == []
    assert leaks(secret_run.places, DOWNLOAD_TOKEN) == []
    assert [name for name, data in secret_run.places.items() if b"CANARY_models" in data] == []
    assert [name for name, data in secret_run.places.items() if b"CANARY-models" in data] == []


# -- in process: the exception and the log records of a failed run --------------------------


@pytest.mark.slow
def test_a_run_that_fails_on_a_refused_key_keeps_it_out_of_the_error_traceback_and_logs(
    prefect_env: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from flows.flyer import flyer

    echo = error_reply(401, f"Incorrect API key provided: {TEXT_KEY}. Authorization: Bearer ...")
    with ScriptedOpenAI([echo]) as server:
        monkeypatch.setenv("HYPERLOCAL_TEXT__KIND", "openai")
        monkeypatch.setenv("HYPERLOCAL_TEXT__BASE_URL", server.url)
        monkeypatch.setenv("HYPERLOCAL_TEXT__MODEL", "test-model")
        monkeypatch.setenv("HYPERLOCAL_TEXT__API_KEY", TEXT_KEY)
        brief = Brief(**BRIEF_FLAGS)
        # Prefect's loggers do not propagate to the root logger, where caplog listens.
        prefect_logger = logging.getLogger("prefect")
        prefect_logger.addHandler(caplog.handler)
        try:
            with caplog.at_level(logging.DEBUG), pytest.raises(ConfigurationError) as failed:
                flyer(brief=brief, variants=1, formats=["square"])
        finally:
            prefect_logger.removeHandler(caplog.handler)
        sent = [r.headers.get("authorization") for r in server.chat_requests]
    assert sent
    assert set(sent) == {f"Bearer {TEXT_KEY}"}
    assert "HYPERLOCAL_TEXT__API_KEY" in str(failed.value)
    shown = "".join(traceback.format_exception(failed.value))
    chain: list[BaseException] = []
    error: BaseException | None = failed.value
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    records = [
        f"{r.getMessage()} {r.exc_text or ''} "
        + ("".join(traceback.format_exception(*r.exc_info)) if r.exc_info else "")
        for r in caplog.records
    ]
    assert records, "the failed run logged nothing"
    for text in [shown, *map(str, chain), *map(repr, chain), *records]:
        assert TEXT_KEY not in text
        assert "CANARY" not in text


def test_an_image_server_echoing_its_password_does_not_put_it_in_the_fault() -> None:
    zone = place_design(FORMATS["square"], "frosted").text_zone
    request = ImageRequest(
        prompt=fit_image_prompt(
            ImagePrompt(phrases=[PromptPhrase(text="bread", role="subject", priority=100)]),
            syntax=PromptSyntax(encoders=1, weights="a1111", chunks="a1111"),
            counters=[clip_counter()],
            zone=zone.describe(),
        ),
        width=256,
        height=256,
        seed=1,
        attempt=1,
        steps=20,
        cfg_scale=6.0,
        palette=["#1F3A5F"],
        text_zone=zone,
    )
    echo = Step(503, f"queue full for {IMAGE_USER}:{IMAGE_PASSWORD}")
    with ScriptedA1111([echo], auth=(IMAGE_USER, IMAGE_PASSWORD)) as server:
        url = server.url.replace("http://", f"http://{IMAGE_USER}:{IMAGE_PASSWORD}@")
        with pytest.raises(BackendBusy) as busy:
            A1111ImageBackend(url, timeout_s=5).generate(request)
    assert IMAGE_PASSWORD not in str(busy.value)


def test_a_text_server_echoing_the_key_in_a_busy_answer_keeps_it_out_of_the_fault() -> None:
    """The scrubbing the run above relies on, for each way a busy server can answer."""
    script = [
        error_reply(503, f"model is loading; key {TEXT_KEY}"),
        Reply(200, {"error": {"message": f"overloaded, try again ({TEXT_KEY})"}}),
        Reply(429, f"rate limited: {TEXT_KEY}"),
    ]
    from backends.base import CopyRequest

    request = CopyRequest(brief=Brief(**BRIEF_FLAGS), variant=1, variants=1)
    with ScriptedOpenAI(script) as server:
        texts = OpenAITextBackend(server.url, model="test-model", api_key=TEXT_KEY, timeout_s=5)
        messages = []
        for _ in script:
            with pytest.raises(HyperlocalError) as failed:
                texts.write_copy(request)
            assert isinstance(failed.value, BackendBusy)
            messages.append(str(failed.value))
    assert len(messages) == 3
    for message in messages:
        assert TEXT_KEY not in message
        assert "***" in message
