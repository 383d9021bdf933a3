"""Benchmark: 32 picture checks against a real mlx_vlm.server at concurrency 1, 2, 4, 8.

    python -m bench.vision_concurrency [--pictures 32] [--max-tokens 32] [--write]

Builds a tiny random-weight qwen2_vl model, serves it with ``mlx_vlm.server`` on
loopback and checks builtin-painter pictures (they pass the heuristic screen, so
every one reaches the model) with ``OpenAIVisionBackend`` from N threads, with
``max_in_flight`` N, profile ``fast``. The tiny model answers junk, so each check
costs its 3 attempts. Chat requests are counted on the wire by a recording httpx
transport. Figures: checks and requests per second, latency per check, and the
speed-up over concurrency 1, measured side by side in one run. Needs the test
and mlx extras.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from backends.base import CheckRequest, ImageRequest
from backends.builtin_image import BuiltinPainter
from backends.openai_vision import OpenAIVisionBackend
from bench.results import record
from hyperlocal.errors import InvalidModelOutput
from hyperlocal.layout.designs import place_design
from hyperlocal.layout.formats import FORMATS
from hyperlocal.models import ImagePrompt, PromptPhrase
from hyperlocal.prompts.clip_tokens import clip_counter
from hyperlocal.prompts.fitting import fit_image_prompt
from tests.servers import RecordingTransport, mlx_vlm_server
from tests.tiny_models import build_tiny_mlx_vlm

LEVELS = (1, 2, 4, 8)
ZONE = place_design(FORMATS["letter"], "frosted").text_zone


def _pictures(count: int) -> list[CheckRequest]:
    """Return ``count`` check requests for builtin-painter pictures (the screen passes them)."""
    painter = BuiltinPainter()
    prompt = fit_image_prompt(
        ImagePrompt(
            phrases=[PromptPhrase(text="abstract poster background", role="subject", priority=1)],
            negative=[],
        ),
        syntax=painter.prompt_syntax,
        counters=[clip_counter()],
        zone=ZONE.describe(),
    )
    palette = ["#1F3A5F", "#F2A541", "#FDF6EC"]
    return [
        CheckRequest(
            image=painter.generate(
                ImageRequest(
                    prompt=prompt,
                    width=320,
                    height=416,
                    seed=seed,
                    attempt=1,
                    steps=1,
                    cfg_scale=0.0,
                    palette=palette,
                    text_zone=ZONE,
                )
            ),
            text_zone=ZONE,
            subject="sourdough loaves on a rustic wooden table",
            min_score=5.0,
        )
        for seed in range(1, count + 1)
    ]


@dataclass(frozen=True)
class Level:
    """The figures of one concurrency level."""

    checks_per_s: float
    requests_per_s: float
    latencies: list[float]


def _run(
    url: str, model: Path, concurrency: int, requests: list[CheckRequest], max_tokens: int
) -> Level:
    """Check every picture with ``concurrency`` threads; return the figures."""
    transport = RecordingTransport()
    backend = OpenAIVisionBackend(
        url,
        model=str(model),
        profile="fast",
        max_in_flight=concurrency,
        max_tokens=max_tokens,
        timeout_s=300,
        transport=transport,
    )

    def one(index: int) -> float:
        started = time.perf_counter()
        # Junk from random weights: every attempt still was a real request.
        with contextlib.suppress(InvalidModelOutput):
            backend.check(requests[index])
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        latencies = list(pool.map(one, range(len(requests))))
    seconds = time.perf_counter() - started
    backend.close()
    # Every chat request counts, the refused response_format probe included.
    sent = len(transport.chats())
    return Level(len(requests) / seconds, sent / seconds, latencies)


def main() -> None:
    """Run the benchmark and print (and optionally record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args()
    requests = _pictures(args.pictures)
    with tempfile.TemporaryDirectory() as folder:
        model = build_tiny_mlx_vlm(Path(folder) / "tiny-vlm")
        with mlx_vlm_server(model) as url:
            # Warm up: kernels compiled, caches filled, before anything is timed.
            _run(url, model, 2, requests[:2], args.max_tokens)
            levels = {n: _run(url, model, n, requests, args.max_tokens) for n in LEVELS}
    base = levels[1].checks_per_s
    lines = [
        f"{args.pictures} checks x 3 attempts (junk answers), profile fast, max_tokens "
        f"{args.max_tokens}, tiny random-weight qwen2_vl on mlx[cpu] behind mlx_vlm.server, "
        "OpenAIVisionBackend with max_in_flight = threads = concurrency",
        "",
        "| concurrency | checks/s | requests/s | latency min / median / max s | speed-up over 1 |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {n} | {lv.checks_per_s:.2f} | {lv.requests_per_s:.2f} | "
            f"{min(lv.latencies):.2f} / {statistics.median(lv.latencies):.2f} / "
            f"{max(lv.latencies):.2f} | {lv.checks_per_s / base:.2f}x |"
            for n, lv in levels.items()
        ),
    ]
    print("\n".join(lines))
    if args.write:
        record("Vision backend concurrency (`python -m bench.vision_concurrency --write`)", lines)


if __name__ == "__main__":
    main()
