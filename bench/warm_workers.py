"""Benchmark: model workers and a reused Prefect server, side by side in one run.

    python -m bench.warm_workers [--runs N] [--write]

Part 1, the cached command line: the same brief re-run (every step cached) with
Prefect's temporary server, against a server already running (found by itself at
Prefect's local address), and the floor (Python start and the command's imports).

Part 2, an in-process model (a tiny random-weight SDXL pipeline, so the figures are
the fixed costs, not painting): N runs in a row, each a new process as a deployment's
runs are, each painting a new picture, without workers (each run imports torch and
loads the pipeline), on a persistent Dask cluster (one worker process, which keeps
the pipeline) and with one model worker (which keeps it too). Per run: wall
time, the model libraries imported in the run's own process, and the run's wall over
the picture step's model compute where it is measured apart (the worker's own timing).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import record

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LIST_IMPORTS = (
    "import sys\n"
    "from flows.flyer import main\n"
    "code = main(sys.argv[1:])\n"
    "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'mlx') if m in sys.modules]\n"
    "print('imported:', ' '.join(heavy) or 'none')\n"
    "sys.exit(code)\n"
)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed: {done.stdout[-800:]}{done.stderr[-800:]}")
    return wall, done.stdout


def _manifest(stdout: str) -> dict[str, object]:
    folder = next(
        Path(line.split(" in ", 1)[1].rstrip(":"))
        for line in stdout.splitlines()
        if line.startswith("Flyers in ")
    )
    return json.loads((folder / "manifest.json").read_text())  # type: ignore[no-any-return]


def _picture_seconds(manifest: dict[str, object]) -> float:
    steps = manifest["steps"]
    assert isinstance(steps, list)
    return sum(float(s["seconds"]) for s in steps if s["step"] == "generate_image")


def main() -> None:
    """Run the benchmark and print (and optionally record) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per case")
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args()
    python = sys.executable
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(
            PREFECT_HOME=str(work / "prefect"),
            PREFECT_SERVER_API_PORT=str(port),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_UI_ENABLED="false",
            HYPERLOCAL_CACHE_DIR=str(work / "cache"),
            HYPERLOCAL_OUTPUT_DIR=str(work / "output"),
        )
        flyer = [python, "-m", "flows.flyer", "--variants", "1", "--format", "square"]
        _timed([*flyer, "--server", "temporary"], env)  # fills the cache
        temporary = [_timed([*flyer, "--server", "temporary"], env)[0] for _ in range(args.runs)]
        floor = [_timed([python, "-c", "import flows.flyer"], env)[0] for _ in range(args.runs)]
        try:
            _timed([*flyer, "--server", "start"], env)
            reused = [_timed(flyer, env)[0] for _ in range(args.runs)]
            lines += _cached_lines(temporary, reused, floor)
            lines += _worker_lines(work, env, flyer, args.runs)
        finally:
            subprocess.run([python, "-m", "prefect", "server", "stop"], env=env, check=False)
    print("\n".join(lines))
    if args.write:
        record("Model workers and a reused Prefect server", lines)


def _cached_lines(temporary: list[float], reused: list[float], floor: list[float]) -> list[str]:
    med_t, med_r, med_f = (statistics.median(x) for x in (temporary, reused, floor))
    return [
        "Cached re-run of `python -m flows.flyer --variants 1 --format square` "
        f"(median of {len(temporary)}):",
        "",
        "| case | wall s |",
        "| --- | --- |",
        f"| temporary Prefect server | {med_t:.2f} |",
        f"| server already running (found by itself) | {med_r:.2f} |",
        f"| floor: Python start + `import flows.flyer` | {med_f:.2f} |",
        "",
        f"Reused over temporary: **{med_r / med_t:.0%}**.",
        "",
    ]


def _start_dask(port: int, env: dict[str, str], work: Path) -> list[subprocess.Popen[bytes]]:
    """Start a Dask scheduler and one worker process on loopback; wait for the worker."""
    from distributed import Client

    log = (work / "dask.log").open("wb")
    scheduler = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            ":0",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            f"tcp://127.0.0.1:{port}",
            "--nworkers",
            "1",
            "--nthreads",
            "4",
            "--dashboard-address",
            ":0",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    with Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
        client.wait_for_workers(1, timeout=120)
    return [worker, scheduler]


def _worker_lines(work: Path, env: dict[str, str], flyer: list[str], runs: int) -> list[str]:
    from tests.tiny_sdxl import build_tiny_sdxl

    model = build_tiny_sdxl(work / "tiny-sdxl")
    painting = {
        **env,
        "HYPERLOCAL_IMAGE__KIND": "diffusers",
        "HYPERLOCAL_IMAGE__MODEL": str(model),
        "HYPERLOCAL_IMAGE__SIZE": "64x64",
        "HYPERLOCAL_IMAGE__SEED": "-1",  # a new picture every run
        "HYPERLOCAL_QC__ENABLED": "false",
    }
    run = [sys.executable, "-c", LIST_IMPORTS, *flyer[3:]]
    table = [
        "| case | run | wall s | picture step, as the run saw it, s | model compute in the "
        "worker, s | wall / compute | imported in the run | loads in the worker |"
    ]
    table.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for case in ("no workers", "persistent Dask cluster", "one model worker"):
        worker = None
        case_env = {
            **painting,
            "HYPERLOCAL_MODEL_WORKERS": "auto" if case == "one model worker" else "off",
        }
        if case == "persistent Dask cluster":
            dask_port = _free_port()
            case_env["HYPERLOCAL_TASK_RUNNER"] = "dask"
            case_env["HYPERLOCAL_DASK_ADDRESS"] = f"tcp://127.0.0.1:{dask_port}"
            cluster = _start_dask(dask_port, case_env, work)
        if case == "one model worker":
            log = (work / "worker.log").open("w")
            worker = subprocess.Popen(
                [sys.executable, "-m", "flows.workers"],
                cwd=PROJECT_ROOT,
                env=case_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 120
            while "waiting for runs" not in (work / "worker.log").read_text():
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise SystemExit("the model worker did not start")
                time.sleep(0.2)
            time.sleep(2)  # its subscription follows the line
        loads_before = 0
        try:
            for n in range(1, runs + 1):
                wall, stdout = _timed(run, case_env)
                step = _picture_seconds(_manifest(stdout))
                loads = compute = ratio = "-"
                if worker is not None:
                    text = (work / "worker.log").read_text()
                    loaded = text.count("it stays loaded")
                    loads, loads_before = str(loaded - loads_before), loaded
                    painted = re.findall(
                        r"^generate_image-\d+: completed, ([\d.]+) s", text, re.MULTILINE
                    )
                    if painted:
                        compute = painted[-1]
                        ratio = f"{wall / max(float(painted[-1]), 0.01):.0f}x"
                imported = stdout.rsplit("imported:", 1)[1].strip().splitlines()[0]
                table.append(
                    f"| {case} | {n} | {wall:.1f} | {step:.2f} | {compute} | {ratio} "
                    f"| {imported} | {loads} |"
                )
        finally:
            if worker is not None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
                log.close()
            if case == "persistent Dask cluster":
                for process in cluster:
                    process.terminate()
                    process.wait(timeout=60)
    return [
        f"{runs} runs in a row with a tiny random SDXL pipeline (64x64, 1 picture, QC off), "
        "each a new process as a deployment's runs are:",
        "",
        *table,
        "",
    ]


if __name__ == "__main__":
    main()
