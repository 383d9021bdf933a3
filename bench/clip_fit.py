"""Benchmark: fitting image prompts to CLIP's 77 tokens, ours against a naive loop.

    python -m bench.clip_fit [--prompts N] [--write]

Fits N generated prompts (lists of 6-30 phrases with roles and priorities) with
``hyperlocal.prompts.fitting.fit_phrases`` counting with ``instant-clip-tokenizer``,
and, side by side in the same run, with a naive loop that re-tokenizes the
whole prompt with transformers' CLIPTokenizer after each dropped phrase (what
the pipeline did before). Both must keep the same phrases. Prints prompts per
second and the speed-up; ``--write`` records them in ``bench/RESULTS.md``.
Needs the test extras (transformers, and open-clip-torch for the vocabulary).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.results import record
from hyperlocal.models import PhraseRole, PromptPhrase
from hyperlocal.prompts.clip_tokens import CLIP_WINDOW, clip_counter
from hyperlocal.prompts.fitting import fit_phrases, join_phrases
from tests.clip_vocab import hf_clip_tokenizer

ROLES: tuple[PhraseRole, ...] = ("subject", "setting", "composition", "style", "lighting")
_LEXICON = """
    sourdough loaves rustic wooden table warm golden light cosy bakery morning steam
    editorial photograph bokeh vibrant café espresso crème brûlée jazz trio stage
    festoon lights market stalls fresh produce handmade ceramics 35mm film grain
    soft shadows pastel palette minimalist composition empty space lower third
    東京 桜 🍞 ☕ naïve façade £35 10am–1pm
"""
WORDS = tuple(_LEXICON.split())


def generate_prompts(count: int, seed: int = 7) -> list[list[PromptPhrase]]:
    """Return ``count`` deterministic phrase lists, most of them over 77 tokens."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        phrases = [
            PromptPhrase(
                text=" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7))),
                role=rng.choice(ROLES),
                priority=rng.randint(0, 100),
            )
            for _ in range(rng.randint(6, 30))
        ]
        prompts.append(phrases)
    return prompts


def naive_fit(phrases: list[PromptPhrase], tokenizer: Any) -> list[PromptPhrase]:
    """Drop the lowest-priority phrase and re-tokenize everything, until it fits."""
    kept = list(phrases)
    while len(kept) > 1 and len(tokenizer(join_phrases(kept))["input_ids"]) > CLIP_WINDOW:
        victim = min(reversed(range(len(kept))), key=lambda i: kept[i].priority)
        kept.pop(victim)
    return kept


def _rate(fit: Callable[[list[PromptPhrase]], list[PromptPhrase]], prompts: list[Any]) -> float:
    started = time.perf_counter()
    for phrases in prompts:
        fit(phrases)
    return len(prompts) / (time.perf_counter() - started)


def main() -> None:
    """Run the benchmark and print (and optionally record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args()

    prompts = generate_prompts(args.prompts)
    counter = clip_counter()
    with tempfile.TemporaryDirectory() as folder:
        tokenizer = hf_clip_tokenizer(Path(folder))

    def ours(phrases: list[PromptPhrase]) -> list[PromptPhrase]:
        return fit_phrases(phrases, counter)[0]

    def naive(phrases: list[PromptPhrase]) -> list[PromptPhrase]:
        return naive_fit(phrases, tokenizer)

    for phrases in prompts[:500]:
        if ours(phrases) != naive(phrases):
            raise SystemExit("the two fitters disagree: the benchmark would compare nothing")
    over = sum(counter.count(join_phrases(p)) > CLIP_WINDOW for p in prompts)
    # Alternate the two, twice, so neither gains from a warmer machine.
    rates_ours, rates_naive = [], []
    for _ in range(2):
        rates_ours.append(_rate(ours, prompts))
        rates_naive.append(_rate(naive, prompts))
    best_ours, best_naive = max(rates_ours), max(rates_naive)
    lines = [
        f"{len(prompts)} prompts, {over} of them over 77 tokens before fitting; best of 2 rounds",
        "",
        "| fitter | prompts/s |",
        "| --- | --- |",
        f"| hyperlocal fit_phrases (instant-clip-tokenizer) | {best_ours:,.0f} |",
        f"| naive loop, transformers CLIPTokenizer per drop | {best_naive:,.0f} |",
        "",
        f"speed-up: {best_ours / best_naive:.1f}x",
    ]
    print("\n".join(lines))
    if args.write:
        record("CLIP prompt fitting (`python -m bench.clip_fit --write`)", lines)


if __name__ == "__main__":
    main()
