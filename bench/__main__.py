"""Run every benchmark of the project: ``python -m bench [--quick] [--only NAME ...] [--no-write]``.

Each benchmark runs in a fresh process (``python -m bench.<name> --write``), one
after another, so none inherits another's imports, loaded models or threads,
and a crash ends only that one. ``--quick`` passes smaller sizes (fewer
prompts, pictures, rounds); the full run uses each benchmark's defaults. A
benchmark whose extras are not installed, or that exits with
``bench.results.EXIT_SKIPPED`` or on a missing module, is reported skipped with
the reason. Prints what ran, was skipped or failed and how long each took, then
(unless ``--no-write``) puts the date, machine, Python and package versions and
that summary at the top of ``bench/RESULTS.md``. Exit code 1 when any failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.results import EXIT_SKIPPED, write_header

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
#: Modules of bench/ that are not benchmarks.
NOT_BENCHMARKS = {"__init__", "__main__", "results"}


@dataclass(frozen=True)
class Benchmark:
    """How to run one benchmark module: what it needs, and its --quick options."""

    requires: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    full: tuple[str, ...] = ()
    note: str = ""


#: Every known benchmark, in the order they run (cheap and self-contained first).
#: Modules added to bench/ later and not listed here still run, after these, with defaults.
BENCHMARKS: dict[str, Benchmark] = {
    "clip_fit": Benchmark(
        requires=("transformers", "instant_clip_tokenizer"),
        quick=("--prompts", "1000"),
    ),
    "layout_render": Benchmark(requires=("typst",), quick=("--rounds", "1")),
    # Already about a minute; its warm-up keeps first-run imports out of the figures.
    "orchestration": Benchmark(),
    "flyer_cache": Benchmark(quick=("--runs", "1")),
    "warm_workers": Benchmark(
        requires=("torch", "diffusers", "transformers"),
        quick=("--runs", "2"),
        note="cached re-runs with a temporary or reused server; runs with and without a worker",
    ),
    "text_concurrency": Benchmark(
        requires=("mlx", "mlx_lm"), quick=("--variants", "4", "--max-tokens", "16")
    ),
    "constrained_decoding": Benchmark(requires=("mlx", "mlx_lm"), quick=("--tokens", "64")),
    # A real model (built once from a PyPI wheel, ~35 s): ~100 s a brief on a 2-core CPU.
    "real_model_copy": Benchmark(
        requires=("mlx", "mlx_lm", "gguf", "torch", "transformers"),
        quick=("--briefs", "1"),
        note="SmolLM2-135M-Instruct in process; first-try validity and prompt tokens",
    ),
    "vision_concurrency": Benchmark(
        requires=("mlx", "mlx_vlm"), quick=("--pictures", "8", "--max-tokens", "16")
    ),
    "diffusers_overhead": Benchmark(
        requires=("torch", "diffusers", "transformers"),
        quick=("--images", "4", "--rounds", "1"),
        note="tiny random SDXL on the default device; --model for a real one",
    ),
}

Status = Literal["ran", "skipped", "failed"]


@dataclass
class Outcome:
    """What became of one benchmark."""

    name: str
    status: Status
    seconds: float = 0.0
    reason: str = ""
    output: list[str] = field(default_factory=list)


def discover() -> list[str]:
    """Return every benchmark module's name: the known ones in order, then any new ones."""
    found = sorted(p.stem for p in BENCH_DIR.glob("*.py") if p.stem not in NOT_BENCHMARKS)
    return [name for name in BENCHMARKS if name in found] + [
        name for name in found if name not in BENCHMARKS
    ]


def missing_modules(benchmark: Benchmark) -> list[str]:
    """Return the modules ``benchmark`` needs that this installation cannot import."""
    missing = []
    for module in benchmark.requires:
        try:
            if importlib.util.find_spec(module) is None:
                missing.append(module)
        except (ImportError, ValueError):
            missing.append(module)
    return missing


_MISSING_MODULE = re.compile(r"(?:ModuleNotFoundError|ImportError): (.*)")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def classify(returncode: int, stderr: str) -> tuple[Status, str]:
    """Return the status of a finished benchmark process and the reason, if not ran.

    Exit 0 ran; ``EXIT_SKIPPED`` or a missing module is a skip (the machine lacks
    something); anything else failed.
    """
    if returncode == 0:
        return "ran", ""
    last = _last_line(stderr)
    if returncode == EXIT_SKIPPED:
        return "skipped", last.removeprefix("skipped: ") or "the benchmark skipped itself"
    match = _MISSING_MODULE.search(last)
    if match:
        return "skipped", match.group(1)
    return "failed", last or f"exit code {returncode}"


def run_one(name: str, quick: bool, write: bool, timeout_s: float) -> Outcome:
    """Run ``python -m bench.<name>`` in a fresh process and return what became of it."""
    benchmark = BENCHMARKS.get(name, Benchmark())
    missing = missing_modules(benchmark)
    if missing:
        return Outcome(name, "skipped", reason=f"not installed: {', '.join(missing)}")
    argv = [sys.executable, "-m", f"bench.{name}"]
    argv += list(benchmark.quick if quick else benchmark.full)
    if write:
        argv.append("--write")
    print(f"\n=== {name}: {' '.join(argv[1:])}", flush=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        seconds = time.perf_counter() - started
        return Outcome(name, "failed", seconds, f"no result in {timeout_s:.0f} s")
    seconds = time.perf_counter() - started
    status, reason = classify(done.returncode, done.stderr)
    print(done.stdout.rstrip("\n"), flush=True)
    if status == "failed":
        # The end of its log says why; the whole of it would bury the other results.
        tail = done.stderr.strip().splitlines()[-15:]
        print("\n".join(f"  | {line}" for line in tail), file=sys.stderr, flush=True)
    return Outcome(name, status, seconds, reason, done.stdout.splitlines())


def summary_table(outcomes: Sequence[Outcome], quick: bool, only: bool = False) -> list[str]:
    """Return the markdown table of what ran, was skipped or failed, and how long each took."""
    mode = "quick (`--quick`: smaller sizes)" if quick else "full (each benchmark's defaults)"
    chosen = " (`--only`: the others kept their earlier sections)" if only else ""
    lines = [
        f"Benchmarks of that run, {mode}{chosen}:",
        "",
        "| benchmark | status | seconds | note |",
        "| --- | --- | --- | --- |",
    ]
    for outcome in outcomes:
        note = outcome.reason or BENCHMARKS.get(outcome.name, Benchmark()).note
        seconds = f"{outcome.seconds:.0f}" if outcome.status != "skipped" else "-"
        lines.append(f"| {outcome.name} | {outcome.status} | {seconds} | {note} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks; return 1 when any failed, else 0."""
    names = discover()
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run every benchmark of the project in turn."
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME", help=", ".join(names))
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is"
    )
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds one benchmark may take (3600)"
    )
    args = parser.parse_args(argv)

    chosen = [name for name in names if not args.only or name in args.only]
    outcomes = [run_one(name, args.quick, not args.no_write, args.timeout) for name in chosen]
    table = summary_table(outcomes, args.quick, bool(args.only))
    print("\n" + "\n".join(table))
    if not args.no_write:
        write_header(table)
        print("\nwrote bench/RESULTS.md")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
