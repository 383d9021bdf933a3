"""Benchmark: the demo command cold, then cached, side by side in one run.

    python -m bench.flyer_cache [--runs N] [--write]

Each run is the real command line (``python -m flows.flyer``) in a fresh
process with its own temporary Prefect server, as a user runs it. The first run
also creates Prefect's database; cold runs start from an empty cache; cached
runs repeat the same brief. Prints wall time
of the command, time inside the flow (from the manifest) and the ratio; with
``--write`` records them in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import record

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _run(env: dict[str, str]) -> tuple[float, float, int]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "flows.flyer"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"flyer run failed: {result.stderr.strip()}")
    folder = next(
        Path(line.split(" in ", 1)[1].rstrip(":"))
        for line in result.stdout.splitlines()
        if line.startswith("Flyers in ")
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    return wall, float(manifest["seconds"]), sum(manifest["model_calls"].values())


def main() -> None:
    """Run the benchmark and print (and optionally record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold and cached runs each")
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args()

    cold: list[tuple[float, float, int]] = []
    cached: list[tuple[float, float, int]] = []
    with tempfile.TemporaryDirectory() as home:
        base = {
            **os.environ,
            "PREFECT_HOME": home,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        base.pop("PREFECT_API_URL", None)
        with tempfile.TemporaryDirectory() as tmp:
            # The very first run also creates Prefect's database: timed apart.
            first = _run({**base, "HYPERLOCAL_CACHE_DIR": f"{tmp}/c", "HYPERLOCAL_OUTPUT_DIR": tmp})
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                env = {**base, "HYPERLOCAL_CACHE_DIR": f"{tmp}/c", "HYPERLOCAL_OUTPUT_DIR": tmp}
                cold.append(_run(env))
                cached.append(_run(env))

    def median(rows: list[tuple[float, float, int]], index: int) -> float:
        return statistics.median(row[index] for row in rows)

    lines = [
        "| run | command wall s (median) | flow s (median) | model calls |",
        "| --- | --- | --- | --- |",
        f"| first ever (new Prefect database) | {first[0]:.2f} | {first[1]:.2f} | {first[2]} |",
        f"| cold | {median(cold, 0):.2f} | {median(cold, 1):.2f} | {cold[0][2]} |",
        f"| cached | {median(cached, 0):.2f} | {median(cached, 1):.2f} | {cached[0][2]} |",
        "",
        f"cached / cold: command {median(cached, 0) / median(cold, 0):.2f}, "
        f"flow {median(cached, 1) / median(cold, 1):.2f} ({args.runs} runs each)",
    ]
    print("\n".join(lines))
    if args.write:
        record("Demo command, cold and cached (`python -m bench.flyer_cache --write`)", lines)


if __name__ == "__main__":
    main()
