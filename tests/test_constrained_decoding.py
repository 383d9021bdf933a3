"""Schema-constrained generation on tiny random-weight mlx models: junk weights, valid JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from backends.constrained_decoding import (
    TIGHT_STRING_PATTERN,
    JsonSchemaConstraint,
    schema_json,
    tighten_strings,
)
from backends.vision_verdict import VisionVerdict
from hyperlocal.errors import InvalidModelOutput
from hyperlocal.models import ImagePrompt
from hyperlocal.models.fields import STRICT, Line40, Line60, Line100, Line140_0
from tests.tiny_models import build_tiny_mlx_lm, build_tiny_mlx_vlm

pytest.importorskip("mlx_lm")
pytest.importorskip("llguidance")

SEEDS = (0, 1, 2)
# Enough for any answer of these schemas from random weights (strings are bounded, numbers
# are not: a junk float can run to a hundred digits).
MAX_TOKENS = 3000


class CopyLike(BaseModel):
    """FlyerCopy's shape: stripped one-line strings with length limits, a bounded list."""

    model_config = STRICT

    headline: Line40 = Field(description="The big line.")
    subhead: Line140_0 = ""
    body_points: list[Line100] = Field(default_factory=list, max_length=2)
    call_to_action: Line60


class Phrase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=12)
    priority: int = Field(ge=0, le=9)


class WithRef(BaseModel):
    """Two uses of one $defs entry, one of them optional."""

    model_config = ConfigDict(extra="forbid")

    main: Phrase
    spare: Phrase | None = None
    tags: list[Phrase] = Field(max_length=2)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    import mlx_lm

    folder = build_tiny_mlx_lm(tmp_path_factory.mktemp("tiny-mlx-lm"))
    return mlx_lm.load(str(folder))


def generate(
    tiny_lm: tuple[Any, Any], schema: type[BaseModel], seed: int, max_tokens: int = MAX_TOKENS
) -> tuple[str, Any]:
    import mlx.core as mx
    import mlx_lm
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = tiny_lm
    processor = JsonSchemaConstraint(tokenizer, schema).logits_processor()
    mx.random.seed(seed)
    text = mlx_lm.generate(
        model,
        tokenizer,
        prompt="Answer in JSON.",
        max_tokens=max_tokens,
        sampler=make_sampler(temp=1.0),
        logits_processors=[processor],
    )
    return text, processor


@pytest.mark.parametrize("schema", [VisionVerdict, CopyLike, WithRef, ImagePrompt])
@pytest.mark.parametrize("seed", SEEDS)
def test_junk_weights_still_answer_json_that_validates(
    tiny_lm: tuple[Any, Any], schema: type[BaseModel], seed: int
) -> None:
    text, processor = generate(tiny_lm, schema, seed)
    schema.model_validate_json(text)
    assert processor.complete
    # Compact JSON: no whitespace outside strings, no key the model does not have.
    assert not re.search(r"\s", re.sub(r'"(?:[^"\\]|\\.)*"', "", text))
    assert json.loads(text).keys() <= schema.model_fields.keys()
    processor.raise_if_cut_off("HYPERLOCAL_TEXT__MAX_TOKENS")


def test_a_ref_schema_keeps_its_limits(tiny_lm: tuple[Any, Any]) -> None:
    assert "$defs" in WithRef.model_json_schema()
    for seed in SEEDS:
        answer = WithRef.model_validate_json(generate(tiny_lm, WithRef, seed)[0])
        assert len(answer.tags) <= 2
        assert all(1 <= len(p.text) <= 12 for p in [answer.main, *answer.tags])


def test_an_answer_cut_off_by_max_tokens_is_reported_with_the_setting(
    tiny_lm: tuple[Any, Any],
) -> None:
    text, processor = generate(tiny_lm, VisionVerdict, 0, max_tokens=5)
    assert not processor.complete
    assert processor.generated_tokens == 5
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(InvalidModelOutput, match=r"cut off at 5 tokens.*HYPERLOCAL_TEXT__MAX"):
        processor.raise_if_cut_off("HYPERLOCAL_TEXT__MAX_TOKENS")


def test_the_constraint_refuses_what_the_models_refuse(tiny_lm: tuple[Any, Any]) -> None:
    _model, tokenizer = tiny_lm
    constraint = JsonSchemaConstraint(tokenizer, WithRef)
    ok = {"main": {"text": "bread", "priority": 3}, "tags": []}
    assert constraint.accepts(json.dumps(ok, separators=(",", ":")))
    bad = [
        {"main": {"text": "x" * 13, "priority": 3}, "tags": []},  # maxLength
        {"main": {"text": "a", "priority": 10}, "tags": []},  # maximum
        {"main": {"text": " a", "priority": 1}, "tags": []},  # leading space (stripped)
        {"main": {"text": "a\nb", "priority": 1}, "tags": []},  # control character
        {"main": {"text": "a", "priority": 1}, "tags": [ok["main"]] * 3},  # maxItems
        {"main": {"text": "a", "priority": 1}},  # required
    ]
    for value in bad:
        assert not constraint.accepts(json.dumps(value, separators=(",", ":"))), value
    assert not constraint.accepts(json.dumps(ok))  # spaces after separators: not compact


def test_the_compiled_grammar_is_cached_per_tokenizer_and_schema(
    tiny_lm: tuple[Any, Any],
) -> None:
    _model, tokenizer = tiny_lm
    first = JsonSchemaConstraint(tokenizer, VisionVerdict)
    again = JsonSchemaConstraint(tokenizer, VisionVerdict.model_json_schema())
    assert first._compiled is again._compiled
    assert first.logits_processor() is not again.logits_processor()


def test_tightening_adds_the_pattern_to_free_strings_only() -> None:
    schema = tighten_strings(json.loads(schema_json(ImagePrompt)))
    phrase = schema["$defs"]["PromptPhrase"]["properties"]
    assert phrase["text"]["pattern"] == TIGHT_STRING_PATTERN
    assert "pattern" not in phrase["role"]  # an enum


def test_importing_the_module_imports_neither_mlx_nor_llguidance() -> None:
    code = (
        "import sys, backends.constrained_decoding; "
        "print(sorted({'mlx', 'llguidance'} & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.stdout.strip() == "[]"


def test_mlx_vlm_generate_takes_the_processor(tmp_path: Path) -> None:
    pytest.importorskip("mlx_vlm")
    import mlx.core as mx
    import mlx_vlm
    from mlx_vlm.prompt_utils import apply_chat_template
    from PIL import Image

    folder = build_tiny_mlx_vlm(tmp_path / "tiny-vlm")
    model, processor = mlx_vlm.load(str(folder))
    prompt = apply_chat_template(
        processor, model.config, [{"role": "user", "content": "Check."}], num_images=1
    )
    picture = Image.new("RGB", (56, 56), (200, 120, 40))
    for seed in SEEDS:
        constrained = JsonSchemaConstraint(processor, VisionVerdict).logits_processor()
        mx.random.seed(seed)
        result = mlx_vlm.generate(
            model,
            processor,
            prompt,
            image=[picture],
            max_tokens=MAX_TOKENS,
            temperature=1.0,
            verbose=False,
            logits_processors=[constrained],
        )
        VisionVerdict.model_validate_json(result.text)
        assert constrained.complete
        assert result.finish_reason == "stop"
