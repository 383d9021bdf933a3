"""Fast checks of the benchmark code: the critical path, the sleepy backends, the runner.

No benchmark runs here; ``python -m bench`` does that.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from backends import registry
from backends.base import (
    ArtRequest,
    CheckRequest,
    CopyRequest,
    ImageBackend,
    ImageRequest,
    TextBackend,
    VisionBackend,
)
from backends.builtin_image import BuiltinPainter
from backends.builtin_text import BuiltinCopywriter
from backends.heuristic_vision import HeuristicVision
from bench import results
from bench.__main__ import classify, discover
from bench.orchestration import Step, critical_path, nominal_steps
from hyperlocal.briefs.loading import load_brief
from hyperlocal.layout.formats import Zone
from hyperlocal.models import StepRecord
from hyperlocal.prompts.fitting import fit_image_prompt
from hyperlocal.settings import load_settings
from tests.sleepy_backends import Latencies, SleepyImage, SleepyText, SleepyVision, install, restore

BRIEF = Path(__file__).resolve().parent.parent / "examples" / "briefs" / "bakery.toml"


def test_critical_path_is_the_longest_variant_chain_plus_the_tail() -> None:
    steps = [
        Step("write_copy", 1, 1.0),
        Step("generate_image", 1, 2.0, "letter"),
        Step("write_copy", 2, 1.0),
        Step("generate_image", 2, 4.0, "letter"),
        Step("render_flyer", 2, 0.5, "square"),
    ]
    path = critical_path(steps, max_parallel=4, tail_s=0.25)

    assert path.chains == {1: 3.0, 2: 5.5}
    assert path.longest_chain == 5.5
    assert path.workers == 2  # never more workers than variants
    assert path.lower_bound == pytest.approx(5.75)
    assert path.sequential == pytest.approx(8.75)


def test_critical_path_with_fewer_workers_than_variants_is_work_per_worker() -> None:
    steps = [Step("write_copy", v, 2.0) for v in (1, 2, 3, 4)]

    assert critical_path(steps, max_parallel=2).lower_bound == pytest.approx(4.0)
    assert critical_path(steps, max_parallel=1).lower_bound == pytest.approx(8.0)


def test_steps_of_no_variant_run_after_every_chain() -> None:
    steps = [Step("write_copy", 1, 1.0), Step("publish", None, 0.5)]

    path = critical_path(steps, max_parallel=1, tail_s=0.25)

    assert path.tail == pytest.approx(0.75)
    assert path.lower_bound == pytest.approx(1.75)


def test_critical_path_reads_the_manifest_step_records() -> None:
    records = [
        StepRecord(step="write_copy", variant=1, cached=False, seconds=0.3),
        StepRecord(step="generate_image", variant=1, format="letter", cached=False, seconds=0.5),
        StepRecord(step="write_copy", variant=2, cached=True, seconds=0.01),
    ]

    path = critical_path(records, max_parallel=4)

    assert path.chains == {1: pytest.approx(0.8), 2: pytest.approx(0.01)}
    assert path.lower_bound == pytest.approx(0.8)


def test_nominal_steps_follow_the_flow_structure() -> None:
    latencies = {"copy": 0.3, "art": 0.2, "image": 0.5, "check": 0.2}

    steps = nominal_steps(4, ["letter", "square"], latencies)
    path = critical_path(steps, max_parallel=4)

    # Per variant: copy, art, then per format fit, image, check, render.
    assert len(steps) == 4 * (2 + 2 * 4)
    assert [s.step for s in steps[:6]] == [
        "write_copy",
        "direct_art",
        "fit_prompt",
        "generate_image",
        "check_image",
        "render_flyer",
    ]
    assert path.lower_bound == pytest.approx(0.3 + 0.2 + 2 * (0.5 + 0.2))
    assert path.sequential == pytest.approx(4 * 1.9)
    without_qc = nominal_steps(1, ["letter"], latencies, qc=False)
    assert "check_image" not in {s.step for s in without_qc}


def test_critical_path_refuses_no_workers() -> None:
    with pytest.raises(ValueError, match="max_parallel"):
        critical_path([], max_parallel=0)


def test_sleepy_backends_satisfy_the_protocols_with_their_own_identity() -> None:
    text, image, vision = SleepyText(), SleepyImage(), SleepyVision()

    assert isinstance(text, TextBackend)
    assert isinstance(image, ImageBackend)
    assert isinstance(vision, VisionBackend)
    builtin = [BuiltinCopywriter().identity, BuiltinPainter().identity, HeuristicVision().identity]
    for sleepy, original in zip([text, image, vision], builtin, strict=True):
        assert sleepy.identity.kind == "sleepy"
        assert sleepy.identity.role == original.role
        assert sleepy.identity != original  # so cache keys differ from the builtin ones
        assert sleepy.health().ok
    assert SleepyImage(Latencies(image=0.1)).identity != SleepyImage(Latencies(image=0.2)).identity


def test_sleepy_backends_sleep_then_give_the_builtin_output() -> None:
    latencies = Latencies(copy=0.05, art=0.05, image=0.05, check=0.05)
    text, image, vision = SleepyText(latencies), SleepyImage(latencies), SleepyVision(latencies)
    brief = load_brief(BRIEF, {}, load_settings().asset_dirs)
    zone = Zone(x=0.1, y=0.1, w=0.8, h=0.3)

    started = time.perf_counter()
    copy = text.write_copy(CopyRequest(brief=brief, variant=1, variants=1))
    assert time.perf_counter() - started >= 0.05
    assert copy == BuiltinCopywriter().write_copy(CopyRequest(brief=brief, variant=1, variants=1))
    art = text.direct_art(ArtRequest(brief=brief, copy=copy, variant=1))
    assert image.prompt_syntax == BuiltinPainter().prompt_syntax
    prompt = fit_image_prompt(
        art, syntax=image.prompt_syntax, counters=image.token_counters(), zone="top"
    )
    request = ImageRequest(
        prompt=prompt,
        width=128,
        height=96,
        seed=3,
        attempt=1,
        steps=1,
        cfg_scale=0.0,
        palette=list(brief.brand.colors),
        text_zone=zone,
    )
    picture = image.generate(request)
    assert picture.backend == image.identity
    assert picture.png == BuiltinPainter().generate(request).png
    check = CheckRequest(image=picture, text_zone=zone, subject="bread", min_score=5)
    assert vision.check(check) == HeuristicVision().check(check)


def test_install_serves_the_offline_kinds_with_sleepy_backends_until_restored() -> None:
    settings = load_settings(text__kind="builtin", image__kind="builtin", vision__kind="heuristic")
    install(Latencies(copy=0.01, art=0.01, image=0.01, check=0.01))
    try:
        assert isinstance(registry.text_backend(settings), SleepyText)
        assert isinstance(registry.image_backend(settings), SleepyImage)
        assert isinstance(registry.vision_backend(settings), SleepyVision)
        assert registry.resolve("text", settings).kind == "builtin"
    finally:
        restore()
    assert isinstance(registry.text_backend(settings), BuiltinCopywriter)
    assert isinstance(registry.vision_backend(settings), HeuristicVision)


def test_runner_classifies_exits() -> None:
    assert classify(0, "") == ("ran", "")
    assert classify(results.EXIT_SKIPPED, "log\nskipped: needs a GPU\n") == (
        "skipped",
        "needs a GPU",
    )
    assert classify(1, "Traceback\nModuleNotFoundError: No module named 'mlx'\n") == (
        "skipped",
        "No module named 'mlx'",
    )
    assert classify(1, "Traceback\nRuntimeError: boom\n") == ("failed", "RuntimeError: boom")
    assert classify(2, "") == ("failed", "exit code 2")


def test_runner_finds_every_benchmark_module() -> None:
    names = discover()

    assert {"orchestration", "clip_fit", "layout_render", "flyer_cache"} <= set(names)
    assert not {"results", "__main__", "__init__"} & set(names)


def test_write_header_replaces_the_header_and_keeps_the_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "RESULTS.md"
    target.write_text("# Benchmark results\n\nold header\n\n## One\n\nfigures\n## Two\n\nmore\n")
    monkeypatch.setattr(results, "RESULTS", target)

    results.write_header(["| benchmark | status |"])
    results.write_header(["| benchmark | status |"])  # idempotent: no header piles up

    text = target.read_text()
    assert text.startswith("# Benchmark results\n")
    assert "old header" not in text
    assert text.count("- Machine: ") == 1
    assert "Python " in text
    assert "prefect " in text
    assert text.index("| benchmark | status |") < text.index("## One") < text.index("## Two")
    assert text.endswith("## One\n\nfigures\n## Two\n\nmore\n")
