"""A flyer run whose pictures a vision server checks: a rejected picture is painted again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.flyer import flyer
from hyperlocal.models import Brief
from tests.scripted_openai import ScriptedOpenAI, completion

BRIEF = Brief(business="Rosie's", event="Sourdough class", place="12 Market St", price="£35")
REJECT = {
    "has_text": True,
    "shows_subject": True,
    "text_zone_calm": True,
    "has_defects": False,
    "score": 3,
    "reason": "letters on a shop sign",
}
PASS = {**REJECT, "has_text": False, "score": 8, "reason": "clean"}

pytestmark = pytest.mark.slow


def test_a_picture_with_lettering_is_painted_again_and_both_attempts_recorded(
    prefect_env: str, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    script = [completion(json.dumps(REJECT)), completion(json.dumps(PASS))]
    with ScriptedOpenAI(script, models=["tiny-vl"]) as server:
        monkeypatch.setenv("HYPERLOCAL_VISION__BASE_URL", server.url)
        monkeypatch.setenv("HYPERLOCAL_VISION__MODEL", "tiny-vl")
        outcome = flyer(brief=BRIEF, variants=1, formats=["square"])
        assert len(server.chat_requests) == 2
    manifest = outcome.manifest
    assert manifest.backends["vision"].kind == "openai"
    record = manifest.variants[0].formats[0]
    assert [a.attempt for a in record.attempts] == [1, 2]
    first, second = (a.qc for a in record.attempts)
    assert first is not None
    assert second is not None
    assert not first.passed
    assert any("letters" in reason or "text" in reason for reason in first.reasons)
    assert second.passed
    assert record.chosen_attempt == 2
    assert record.qc_passed is True
    assert record.attempts[0].seed != record.attempts[1].seed
    # Each check's model work is on record: the probe of the first, one request each.
    checks = [s for s in manifest.steps if s.step == "check_image"]
    assert [s.attempt for s in checks] == [1, 2]
    works = [s.work for s in checks if s.work is not None]
    assert len(works) == 2
    assert all(w.writer == "openai:tiny-vl" for w in works)
    assert works[1].requests == 1
    assert works[0].requests >= 1
    assert manifest.model_calls["vision"] == works[0].requests + works[1].requests
