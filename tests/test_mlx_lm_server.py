"""The OpenAI-compatible text backend against a real mlx_lm.server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.base import CopyRequest
from backends.openai_text import OpenAITextBackend
from hyperlocal.errors import InvalidModelOutput
from hyperlocal.models import Brief
from tests.flyer_command import run_flyer
from tests.servers import mlx_lm_server
from tests.tiny_models import build_tiny_mlx_lm

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BRIEF = Brief(business="Rosie's", event="Sourdough class", place="12 Market St", price="£35")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_mlx_lm(tmp_path_factory.mktemp("tiny-lm-server"))


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[str]:
    with mlx_lm_server(tiny_model) as url:
        yield url


def test_junk_from_a_real_server_ends_in_the_bounded_failure(server: str, tiny_model: Path) -> None:
    backend = OpenAITextBackend(
        server,
        model=str(tiny_model),
        api_key=None,
        temperature=0.7,
        seed=1,
        max_tokens=32,
        context_window=8192,
        timeout_s=60,
    )
    with pytest.raises(InvalidModelOutput, match=r"^no valid CopyDraft after 3 attempts"):
        backend.write_copy(CopyRequest(brief=BRIEF, variant=1, variants=1))
    stats = backend.stats()
    assert stats.requests >= 3
    # mlx_lm.server ignores response_format: the probe is accepted, answers are junk.
    assert backend.structured_output() != "not probed"


def test_check_reports_the_running_server_and_its_models(server: str, tiny_model: Path) -> None:
    result = run_flyer(
        "--check",
        env={"HYPERLOCAL_TEXT__BASE_URL": server, "HYPERLOCAL_TEXT__MODEL": str(tiny_model)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text_line = next(line for line in result.stdout.splitlines() if line.startswith("text"))
    assert "openai" in text_line
    assert "healthy" in text_line
    assert "one-token answer" in text_line


def test_check_reports_a_server_that_is_down() -> None:
    result = run_flyer("--check", env={"HYPERLOCAL_TEXT__BASE_URL": "http://127.0.0.1:9/v1"})
    assert result.returncode == 1
    assert "unhealthy" in result.stdout


def test_a_flyer_run_through_the_real_server_falls_back_when_asked(
    prefect_env: str, server: str, tiny_model: Path, isolated_env: Path
) -> None:
    result = run_flyer(
        "--variants",
        "2",
        "--format",
        "square",
        env={
            "HYPERLOCAL_TEXT__BASE_URL": server,
            "HYPERLOCAL_TEXT__MODEL": str(tiny_model),
            "HYPERLOCAL_TEXT__MAX_TOKENS": "32",
            "HYPERLOCAL_TEXT__ON_INVALID_OUTPUT": "builtin",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the builtin copywriter took over" in result.stdout
    assert len(list((isolated_env / "output" / "flyer_runs").iterdir())) == 1
