"""Benchmark: copy for 8 variants against a real mlx_lm.server at concurrency 1, 2, 4, 8.

    python -m bench.text_concurrency [--variants 8] [--max-tokens 64] [--write]

Builds a tiny random-weight mlx-lm model, serves it with ``mlx_lm.server`` on
loopback and asks ``OpenAITextBackend.write_copy`` for every variant with N
threads at once (the flow runs variants in parallel the same way). The tiny
model answers junk, so each variant costs its 3 attempts: the figure is chat
requests per second, with the speed-up over concurrency 1, measured side by
side in one run. Needs the test and mlx extras.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from backends.base import CopyRequest
from backends.openai_text import OpenAITextBackend
from bench.results import record
from hyperlocal.errors import InvalidModelOutput
from hyperlocal.models import Brief
from tests.servers import mlx_lm_server
from tests.tiny_models import build_tiny_mlx_lm

BRIEF = Brief(business="Rosie's", event="Sourdough class", place="12 Market St", price="£35")


def _run(
    url: str, model: Path, concurrency: int, variants: int, max_tokens: int
) -> tuple[float, float]:
    backend = OpenAITextBackend(
        url,
        model=str(model),
        api_key=None,
        temperature=0.7,
        seed=1,
        max_tokens=max_tokens,
        context_window=8192,
        timeout_s=300,
    )

    def one(variant: int) -> None:
        # Junk from random weights: every attempt still was a real request.
        with contextlib.suppress(InvalidModelOutput):
            backend.write_copy(CopyRequest(brief=BRIEF, variant=variant, variants=variants))

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(1, variants + 1)))
    seconds = time.perf_counter() - started
    stats = backend.stats()
    backend.close()
    # Tokens come from the server's usage, or are counted with tiktoken when it has none.
    return stats.requests / seconds, stats.completion_tokens / seconds


def main() -> None:
    """Run the benchmark and print (and optionally record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args()
    levels = (1, 2, 4, 8)
    with tempfile.TemporaryDirectory() as folder:
        model = build_tiny_mlx_lm(Path(folder) / "tiny-lm")
        with mlx_lm_server(model) as url:
            _run(url, model, 2, 2, args.max_tokens)  # warm up: kernels compiled, caches filled
            rates = {n: _run(url, model, n, args.variants, args.max_tokens) for n in levels}
    lines = [
        f"{args.variants} variants x 3 attempts (junk answers), max_tokens {args.max_tokens}, "
        "tiny random-weight qwen2 on mlx[cpu]",
        "",
        "| concurrency | requests/s | generated tokens/s | speed-up over 1 |",
        "| --- | --- | --- | --- |",
        *(
            f"| {n} | {rates[n][0]:.2f} | {rates[n][1]:.0f} | {rates[n][0] / rates[1][0]:.2f}x |"
            for n in levels
        ),
    ]
    print("\n".join(lines))
    if args.write:
        record("Text backend concurrency (`python -m bench.text_concurrency --write`)", lines)


if __name__ == "__main__":
    main()
