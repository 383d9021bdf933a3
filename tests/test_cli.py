"""The command line as a user runs it: paths on success, one clear line on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.flyer", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_the_default_command_makes_flyers_and_prints_their_paths(
    prefect_env: str, isolated_env: Path
) -> None:
    result = run_cli()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    printed = [Path(line.strip()) for line in result.stdout.splitlines() if line.startswith("  /")]
    assert len(printed) == 8
    assert all(path.is_file() for path in printed)
    assert {p.suffix for p in printed} == {".pdf", ".png", ".json"}


def test_a_bad_brief_prints_one_line_naming_the_field(tmp_path: Path) -> None:
    brief = tmp_path / "brief.toml"
    brief.write_text(
        'business = "Cafe"\nevent = "Open mic"\nplace = "Here"\n[brand]\ncolors = ["#GGG"]\n'
    )
    result = run_cli("--brief", str(brief))
    assert result.returncode == 2
    line = _one_clear_line(result)
    assert "brand.colors.0" in line
    assert "is not a hex colour" in line


def test_a_bad_setting_prints_one_line_naming_the_variable() -> None:
    result = run_cli(env={"HYPERLOCAL_QC__MAX_ATTEMPTS": "many"})
    assert result.returncode == 2
    assert "HYPERLOCAL_QC__MAX_ATTEMPTS" in _one_clear_line(result)


def test_a_brief_can_come_from_flags_alone(prefect_env: str, isolated_env: Path) -> None:
    result = run_cli(
        "--business",
        "Ada's Bikes",
        "--event",
        "Free bike check",
        "--place",
        "Canal Yard",
        "--date",
        "Sunday 3 May",
        "--variants",
        "1",
        "--format",
        "square",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (folder,) = (isolated_env / "output" / "flyer_runs").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["brief"]["business"] == "Ada's Bikes"
    assert manifest["brief"]["details"] == ""  # nothing from the example brief
    assert manifest["brief"]["brand"]["logo"] is None


def test_a_brief_from_flags_still_needs_its_required_fields() -> None:
    result = run_cli("--business", "Ada's Bikes")
    assert result.returncode == 2
    line = _one_clear_line(result)
    assert "event is required" in line
    assert "place is required" in line


@pytest.mark.parametrize("count", ["0", "9", "two"])
def test_a_variant_count_out_of_range_is_refused_without_a_traceback(count: str) -> None:
    result = run_cli("--variants", count)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--variants" in result.stderr


def test_a_flag_overrides_the_brief_and_is_validated() -> None:
    result = run_cli("--url", "javascript:alert(1)")
    assert result.returncode == 2
    assert "url: must be an http:// or https:// link" in _one_clear_line(result)
    result = run_cli("--language", "Polish")
    assert result.returncode == 2
    assert "language: must be a language tag" in _one_clear_line(result)


def test_an_unknown_font_is_an_error_naming_the_installed_ones(prefect_env: str) -> None:
    result = run_cli(env={"HYPERLOCAL_LAYOUT__HEADING_FONT": "Comic Sans MS"})
    assert result.returncode == 2
    line = _one_clear_line(result)
    assert "Comic Sans MS" in line
    assert "Source Sans Pro" in line


def test_a_backend_kind_without_its_model_fails_before_any_work(prefect_env: str) -> None:
    result = run_cli(env={"HYPERLOCAL_IMAGE__KIND": "diffusers"})
    assert result.returncode == 2
    assert "HYPERLOCAL_IMAGE__MODEL" in _one_clear_line(result)


def test_a_diffusers_model_that_is_not_sdxl_is_one_line(prefect_env: str, tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text('{"_class_name": "FluxPipeline"}')
    result = run_cli(
        env={"HYPERLOCAL_IMAGE__KIND": "diffusers", "HYPERLOCAL_IMAGE__MODEL": str(tmp_path)}
    )
    assert result.returncode == 2
    assert "not an SDXL pipeline" in _one_clear_line(result)


def test_check_shows_every_backend_and_its_health() -> None:
    result = run_cli("--check")
    assert result.returncode == 0, result.stderr
    for word in ("text", "image", "vision", "builtin", "heuristic", "nothing else is configured"):
        assert word in result.stdout
