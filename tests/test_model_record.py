"""What the model did is on record: a context overflow ends in builtin flyers, every request shown.

The case from the field: a llama.cpp server with a 2,048-token context answers every copy
request with HTTP 400 "maximum context length"; with ``on_invalid_output = "builtin"`` the
run must still make flyers (exit 0), the builtin copywriter must take over each variant
whole (no art-direction request after the copy failed), and the manifest and the command
line must show every request, re-ask and fallback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperlocal.models import RunManifest
from tests.flyer_command import run_flyer
from tests.scripted_openai import Recorded, Reply, ScriptedOpenAI, completion, context_overflow

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BRIEF_FILE = PROJECT_ROOT / "examples" / "briefs" / "bakery.toml"

pytestmark = pytest.mark.slow


def _overflowing(request: Recorded) -> Reply:
    if "art-direct" in request.system:
        return completion('{"phrases": [{"text": "bread", "role": "subject", "priority": 100}]}')
    return context_overflow()


def test_a_context_overflow_ends_in_builtin_flyers_with_every_request_on_record(
    prefect_env: str, isolated_env: Path
) -> None:
    with ScriptedOpenAI(_overflowing, schemas="json_object_schema") as server:
        env = {
            "HYPERLOCAL_TEXT__KIND": "openai",
            "HYPERLOCAL_TEXT__PROVIDER": "llamacpp",
            "HYPERLOCAL_TEXT__BASE_URL": server.url,
            "HYPERLOCAL_TEXT__MODEL": "test-model",
            "HYPERLOCAL_TEXT__ON_INVALID_OUTPUT": "builtin",
            "COLUMNS": "200",
        }
        args = ["--brief", str(BRIEF_FILE), "--variants", "2", "--format", "square"]
        result = run_flyer(*args, env=env)
        copy_requests = [r for r in server.chat_requests if "art-direct" not in r.system]
        art_requests = [r for r in server.chat_requests if "art-direct" in r.system]
    assert result.returncode == 0, result.stdout + result.stderr
    (folder,) = (isolated_env / "output" / "flyer_runs").iterdir()
    manifest = RunManifest.model_validate_json((folder / "manifest.json").read_text())

    # The builtin copywriter wrote both variants whole: the model was not asked for art
    # direction of a variant it had failed.
    assert art_requests == []
    assert len(copy_requests) == 6
    for variant in manifest.variants:
        assert variant.copy_writer.startswith("builtin:")
        assert variant.art_writer.startswith("builtin:")
        (fallback,) = variant.text_fallbacks
        assert fallback.startswith("write_copy: ")
        assert "outgrew the server's context window" in fallback

    failed = [s for s in manifest.steps if s.step == "write_copy" and s.error]
    assert len(failed) == 2
    for step in failed:
        assert step.work is not None
        assert step.work.writer == "openai:test-model"
        assert step.work.structured_output == "server json_object schema"
        assert len(step.work.reasks) == 2
        assert all("context window" in reason for reason in step.work.reasks)
        assert any("probe" in note for note in step.work.notes) or step.work.requests == 3
    # Every request counted: the six refused copy requests and the probe(s), plus one
    # builtin call each for the copy and the art of both variants.
    sent = sum(s.work.requests for s in failed if s.work)
    assert sent >= 6
    assert manifest.model_calls["text"] == sent + 4

    saved = json.loads((folder / "manifest.json").read_text())
    assert saved["steps"][0]["work"]["requests"] >= 3
    # The command line says what happened, one line each.
    out = result.stdout
    assert "re-asked 2 times because the conversation outgrew" in out
    assert "the builtin copywriter took over" in out
    assert out.count("variant 1 copy: openai:test-model") == 1
