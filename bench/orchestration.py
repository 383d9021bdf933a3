"""Benchmark: a flyer run with backends of known latency, against its DAG's critical path.

    python -m bench.orchestration [--variants 4] [--formats letter square] [--max-parallel 4]
                                  [--copy 0.3] [--art 0.2] [--image 0.5] [--check 0.2]
                                  [--no-warmup] [--write]

Runs the real ``flyer`` flow (``flows.flyer``) in this process against a real
Prefect server on loopback (its start-up is timed apart), with the test-only
sleepy backends (``tests/sleepy_backends.py``: the builtin ones after a fixed
sleep per call), QC on with one attempt (no retries), a fresh cache folder.

The flow's DAG (``flows/run.py``): each variant is one thread running
``write_copy -> direct_art -> for each format: fit_prompt -> generate_image ->
check_image -> render_flyer``, one step after another; variants run in
parallel, at most ``max_parallel`` at once; ``publish`` follows them all. The
critical-path lower bound is therefore

    max(longest variant chain, sum of chains / workers) + publish

taken once with the step durations the manifest measured and once with the
nominal sleeps alone (no compute). It assumes pictures of different variants
may be painted at once, as the sleepy painter allows; a real in-process model
paints one picture per device at a time, whose bound (all pictures one after
another) is shown for reference. Figures: the flow run's wall time against
the bound (goal: at most 1.10), against all steps one after another (the
speed-up), and a cached re-run of the same brief: its wall time and model
calls (goal: 0). The time before the first step and after publishing is shown
apart; most of the latter is Prefect's wait for its flow-run heartbeat thread,
which sleeps in whole seconds (0 to 1 s per run), so one more cold run with
heartbeats off (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` unset) shows the ratio
without it. ``--write`` records the table in ``bench/RESULTS.md``.

The first flow run of a process also imports and loads what later runs reuse
(Typst, fonts, the CLIP vocabulary, Prefect's client): a one-variant warm-up run
with its own cache goes first unless ``--no-warmup``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.results import record

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BRIEF = PROJECT_ROOT / "examples" / "briefs" / "bakery.toml"
#: The latency-free steps of a chain, in the order a variant's thread runs them per format.
FORMAT_STEPS = ("fit_prompt", "generate_image", "check_image", "render_flyer")
GOAL_RATIO = 1.10
TITLE = "Flow orchestration, known latencies (`python -m bench.orchestration --write`)"
#: The sleep each model step takes, by the latency it is set with (fit and render have none).
STEP_LATENCY = {
    "write_copy": "copy",
    "direct_art": "art",
    "generate_image": "image",
    "check_image": "check",
}


class StepLike(Protocol):
    """What the critical path needs of a step record (``hyperlocal.models.StepRecord``)."""

    @property
    def step(self) -> str: ...

    @property
    def variant(self) -> int | None: ...

    @property
    def seconds(self) -> float: ...


@dataclass(frozen=True)
class Step:
    """One step and how long it took: a hand-made ``StepRecord`` (nominal runs, tests)."""

    step: str
    variant: int | None
    seconds: float
    format: str | None = None


@dataclass(frozen=True)
class CriticalPath:
    """The lower bound of a run's wall time, from its steps' durations."""

    chains: dict[int, float]
    longest_chain: float
    workers: int
    tail: float
    lower_bound: float
    sequential: float


def critical_path(
    steps: Iterable[StepLike], max_parallel: int, tail_s: float = 0.0
) -> CriticalPath:
    """Return the critical-path lower bound of a flyer run made of ``steps``.

    A variant's steps run one after another in its thread, so each variant is one
    chain whose length is the sum of its steps; chains run in parallel on
    ``min(max_parallel, variants)`` workers, so the bound is the longest chain or
    the work per worker, whichever is more. Steps with no variant (and
    ``tail_s``, e.g. ``publish``) run after every chain and add to it.
    ``sequential`` is every step one after another (plus the tail).
    """
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be at least 1, not {max_parallel}")
    chains: dict[int, float] = {}
    serial = tail_s
    for step in steps:
        if step.variant is None:
            serial += step.seconds
        else:
            chains[step.variant] = chains.get(step.variant, 0.0) + step.seconds
    longest = max(chains.values(), default=0.0)
    workers = max(1, min(max_parallel, len(chains)))
    total = sum(chains.values())
    return CriticalPath(
        chains=dict(sorted(chains.items())),
        longest_chain=longest,
        workers=workers,
        tail=serial,
        lower_bound=max(longest, total / workers) + serial,
        sequential=total + serial,
    )


def nominal_steps(
    variants: int, formats: Sequence[str], latencies: dict[str, float], qc: bool = True
) -> list[Step]:
    """Return the steps of a run as the sleeps alone would time them (compute costs nothing).

    ``latencies`` maps ``copy``, ``art``, ``image`` and ``check`` to seconds;
    one attempt per picture (QC never asks for another).
    """
    per_step = {name: latencies[key] for name, key in STEP_LATENCY.items()}
    per_step.update(fit_prompt=0.0, render_flyer=0.0)
    steps: list[Step] = []
    for variant in range(1, variants + 1):
        for name in ("write_copy", "direct_art"):
            steps.append(Step(name, variant, per_step[name]))
        for fmt in formats:
            for name in FORMAT_STEPS:
                if name == "check_image" and not qc:
                    continue
                steps.append(Step(name, variant, per_step[name], fmt))
    return steps


@dataclass
class Timeline:
    """A progress listener that keeps when each step started and finished (perf_counter)."""

    events: list[tuple[float, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: object) -> None:
        """Record one ``tasks.progress.ProgressEvent``."""
        now = time.perf_counter()
        with self._lock:
            self.events.append((now, getattr(event, "step", ""), getattr(event, "state", "")))

    def seconds(self, step: str) -> float:
        """Return the time from the first start of ``step`` to its last finish (0 if none)."""
        starts = [t for t, name, state in self.events if name == step and state == "started"]
        ends = [t for t, name, state in self.events if name == step and state == "finished"]
        return max(ends) - min(starts) if starts and ends else 0.0

    def span(self) -> float:
        """Return the time from the first step's start to the last step's finish."""
        times = [t for t, _, _ in self.events]
        return max(times) - min(times) if times else 0.0

    def first(self) -> float:
        """Return when the first step started (perf_counter); raises ``ValueError`` if none."""
        return min(t for t, _, _ in self.events)

    def last(self) -> float:
        """Return when the last step finished (perf_counter); raises ``ValueError`` if none."""
        return max(t for t, _, _ in self.events)


@dataclass(frozen=True)
class FlowRun:
    """One measured call of the ``flyer`` flow."""

    wall: float
    span: float
    before_steps: float
    after_steps: float
    publish: float
    manifest_seconds: float
    steps: list[StepLike]
    model_calls: int
    cached_steps: int
    computed_steps: int


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in os.environ with no other HYPERLOCAL_* variable; restore on leaving."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("HYPERLOCAL_")]:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _settings_env(
    folder: Path, max_parallel: int, megapixels: float | None = None, ppi: int | None = None
) -> dict[str, str]:
    """Return the settings of a benchmark run: sleepy backends, one QC attempt, own folders.

    ``megapixels`` and ``ppi`` (print PNGs) override the profile's, to weigh compute less.
    """
    lighter = {
        name: str(value)
        for name, value in (
            ("HYPERLOCAL_IMAGE__MEGAPIXELS", megapixels),
            ("HYPERLOCAL_LAYOUT__PRINT_PPI", ppi),
        )
        if value is not None
    }
    return lighter | {
        "HYPERLOCAL_CONFIG": str(folder / "no-such-hyperlocal.toml"),
        "HYPERLOCAL_CACHE_DIR": str(folder / "cache"),
        "HYPERLOCAL_OUTPUT_DIR": str(folder / "output"),
        "HYPERLOCAL_ASSET_DIRS": f'["{PROJECT_ROOT / "examples"}"]',
        # Settings only accept the kinds they list: the sleepy backends stand in for these.
        "HYPERLOCAL_TEXT__KIND": "builtin",
        "HYPERLOCAL_IMAGE__KIND": "builtin",
        "HYPERLOCAL_VISION__KIND": "heuristic",
        "HYPERLOCAL_QC__ENABLED": "true",
        "HYPERLOCAL_QC__MAX_ATTEMPTS": "1",
        # One attempt and never a failed run: a rejected picture ships flagged.
        "HYPERLOCAL_QC__ON_EXHAUSTED": "best",
        "HYPERLOCAL_MAX_PARALLEL": str(max_parallel),
        "HYPERLOCAL_TASK_RUNNER": "threads",
        "HYPERLOCAL_RETRY__DELAY_S": "0",
        "HF_HUB_OFFLINE": "1",
    }


def run_flyer(variants: int, formats: Sequence[str]) -> FlowRun:
    """Call the ``flyer`` flow once with the current settings and time it.

    Raises what the flow raises.
    """
    from flows.flyer import flyer_flow
    from hyperlocal.briefs.loading import load_brief
    from hyperlocal.settings import load_settings
    from tasks.progress import displayed

    settings = load_settings()
    brief = load_brief(BRIEF, {}, settings.asset_dirs)
    timeline = Timeline()
    with displayed(timeline):
        started = time.perf_counter()
        outcome = flyer_flow(settings)(
            brief=brief,
            variants=variants,
            formats=list(formats),
            assets_from=str(BRIEF.parent),
        )
        ended = time.perf_counter()
    manifest = outcome.manifest
    return FlowRun(
        wall=ended - started,
        span=timeline.span(),
        before_steps=timeline.first() - started,
        after_steps=ended - timeline.last(),
        publish=timeline.seconds("publish"),
        manifest_seconds=manifest.seconds,
        steps=list(manifest.steps),
        model_calls=sum(manifest.model_calls.values()),
        cached_steps=manifest.cached_steps,
        computed_steps=manifest.computed_steps,
    )


@dataclass(frozen=True)
class Results:
    """Everything the benchmark measured."""

    variants: int
    formats: list[str]
    max_parallel: int
    latencies: dict[str, float]
    server_start: float
    warmup: FlowRun | None
    cold: FlowRun
    cached: FlowRun
    cold_without_heartbeat: FlowRun


def measure(
    variants: int,
    formats: Sequence[str],
    max_parallel: int,
    latencies: dict[str, float],
    warmup: bool = True,
    megapixels: float | None = None,
    ppi: int | None = None,
) -> Results:
    """Start a Prefect server, then time the warm-up, cold and cached flow runs."""
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    from tests.servers import prefect_server
    from tests.sleepy_backends import Latencies, install, restore

    def env(folder: Path) -> dict[str, str]:
        return _settings_env(folder, max_parallel, megapixels, ppi)

    install(Latencies(**latencies))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-orchestration-") as tmp:
            root = Path(tmp)
            started = time.perf_counter()
            with prefect_server(root / "prefect-home") as api:
                server_start = time.perf_counter() - started
                with temporary_settings(updates={PREFECT_API_URL: api}):
                    first: FlowRun | None = None
                    if warmup:
                        with _environment(env(root / "warmup")):
                            first = run_flyer(1, formats)
                    with _environment(env(root / "run")):
                        cold = run_flyer(variants, formats)
                        cached = run_flyer(variants, formats)
                    # Prefect's flow-run heartbeat thread sleeps in whole seconds and
                    # the flow waits for it to wake before it returns (0 to 1 s).
                    no_heartbeat = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
                    with _environment(env(root / "quiet")), temporary_settings(no_heartbeat):
                        cold_quiet = run_flyer(variants, formats)
                    # Send the runs' queued log lines while the server is still there to take them.
                    APILogWorker.drain_all(timeout=30)
    finally:
        restore()
    return Results(
        variants=variants,
        formats=list(formats),
        max_parallel=max_parallel,
        latencies=dict(latencies),
        server_start=server_start,
        warmup=first,
        cold=cold,
        cached=cached,
        cold_without_heartbeat=cold_quiet,
    )


def report(results: Results) -> list[str]:
    """Return the markdown lines of the results table."""
    cold = results.cold
    measured = critical_path(cold.steps, results.max_parallel, tail_s=cold.publish)
    nominal = critical_path(
        nominal_steps(results.variants, results.formats, results.latencies),
        results.max_parallel,
    )
    pictures = sum(s.seconds for s in cold.steps if s.step == "generate_image")
    one_device = max(measured.lower_bound, pictures + cold.publish)
    ratio = cold.wall / measured.lower_bound
    sleeps = ", ".join(f"{name} {seconds:g} s" for name, seconds in results.latencies.items())
    chains = ", ".join(f"{seconds:.2f}" for seconds in measured.chains.values())
    goal = "met" if ratio <= GOAL_RATIO else "missed"
    lines = [
        f"{results.variants} variants x {len(results.formats)} formats "
        f"({', '.join(results.formats)}), max_parallel {results.max_parallel}, QC on, "
        f"1 attempt, {len(cold.steps)} steps; sleeps per call: {sleeps}. "
        f"Prefect server start-up (not counted): {results.server_start:.1f} s.",
        "",
        "| measure | seconds | note |",
        "| --- | --- | --- |",
        f"| flow run wall (cold) | {cold.wall:.2f} | whole `flyer` call: flow run on the server, "
        "steps, publish, artifacts |",
        f"| steps span (cold) | {cold.span:.2f} | first step start to publish end |",
        f"| before the first step | {cold.before_steps:.2f} | flow run created and started, "
        "progress artifact |",
        f"| after publishing | {cold.after_steps:.2f} | run artifacts, flow run finished "
        "(Prefect waits up to 1 s for its heartbeat thread) |",
        f"| critical path, measured step durations | {measured.lower_bound:.2f} | longest "
        f"variant chain {measured.longest_chain:.2f} (chains {chains}) + publish "
        f"{cold.publish:.2f} |",
        f"| critical path, nominal sleeps | {nominal.lower_bound:.2f} | sleeps alone, no compute |",
        f"| **wall / critical path (measured)** | **{ratio:.2f}** | goal <= {GOAL_RATIO:.2f}: "
        f"{goal} |",
        f"| steps span / critical path (measured) | {cold.span / measured.lower_bound:.2f} | "
        "without flow start and artifacts |",
        f"| wall / critical path (nominal) | {cold.wall / nominal.lower_bound:.2f} | "
        "compute and orchestration over the sleeps |",
        f"| all steps one after another | {measured.sequential:.2f} | sum of measured steps "
        f"+ publish; speed-up {measured.sequential / cold.wall:.2f}x |",
        f"| one image device (reference) | {one_device:.2f} | every picture one after another |",
        f"| cached re-run wall | {results.cached.wall:.2f} | {results.cached.cached_steps} "
        f"steps cached, {results.cached.computed_steps} computed |",
        f"| **cached re-run model calls** | **{results.cached.model_calls}** | goal 0: "
        f"{'met' if results.cached.model_calls == 0 else 'missed'} |",
    ]
    quiet = results.cold_without_heartbeat
    quiet_path = critical_path(quiet.steps, results.max_parallel, tail_s=quiet.publish)
    lines.append(
        f"| cold run, Prefect heartbeats off: wall / critical path | "
        f"{quiet.wall / quiet_path.lower_bound:.2f} | wall {quiet.wall:.2f}, critical path "
        f"{quiet_path.lower_bound:.2f}, after publishing {quiet.after_steps:.2f} |"
    )
    if results.warmup is not None:
        lines.append(
            f"| warm-up run (1 variant, first in process) | {results.warmup.wall:.2f} | "
            "imports and loads later runs reuse |"
        )
    lines += ["", "| step | count | sleep s | measured mean s | measured max s |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for name in ("write_copy", "direct_art", *FORMAT_STEPS):
        times = [s.seconds for s in cold.steps if s.step == name]
        if not times:
            continue
        sleep = results.latencies.get(STEP_LATENCY.get(name, ""), 0.0)
        lines.append(
            f"| {name} | {len(times)} | {sleep:g} | {sum(times) / len(times):.2f} | "
            f"{max(times):.2f} |"
        )
    lines.append(f"| publish | 1 | 0 | {cold.publish:.2f} | {cold.publish:.2f} |")
    lines += [
        "",
        "The bound assumes pictures of different variants may be painted at once (the sleepy "
        "painter allows it); step durations include their compute on this machine's cores.",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and, with ``--write``, record it; return 0."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--formats", nargs="+", default=["letter", "square"])
    parser.add_argument("--max-parallel", type=int, default=4)
    parser.add_argument("--copy", type=float, default=0.3, help="seconds per copy call")
    parser.add_argument("--art", type=float, default=0.2, help="seconds per art direction")
    parser.add_argument("--image", type=float, default=0.5, help="seconds per picture")
    parser.add_argument("--check", type=float, default=0.2, help="seconds per QC check")
    parser.add_argument("--megapixels", type=float, help="picture size (default: profile's)")
    parser.add_argument("--ppi", type=int, help="print formats' PNG ppi (default: profile's)")
    parser.add_argument("--no-warmup", action="store_true", help="measure the first run too")
    parser.add_argument("--verbose", action="store_true", help="show Prefect's console log")
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args(argv)

    from flows.cli import quiet_prefect_console

    # Forty task runs' log lines would bury the table; the server still gets every line.
    quiet_prefect_console(args.verbose)

    latencies = {"copy": args.copy, "art": args.art, "image": args.image, "check": args.check}
    results = measure(
        args.variants,
        args.formats,
        args.max_parallel,
        latencies,
        warmup=not args.no_warmup,
        megapixels=args.megapixels,
        ppi=args.ppi,
    )
    lines = report(results)
    print("\n".join(lines))
    if args.write:
        record(
            "Flow orchestration, known latencies (`python -m bench.orchestration --write`)", lines
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
