"""Model workers: the models load in long-lived workers, and runs hand them their model steps.

Real processes on loopback: the session's Prefect server, two ``python -m flows.workers``
processes holding a tiny SDXL pipeline, and flyer runs from the command line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from flows.model_workers import ROLE_STEPS, deferred_roles
from hyperlocal.errors import ConfigurationError
from hyperlocal.settings import load_settings
from tests.conftest import PROJECT_ROOT
from tests.tiny_sdxl import build_tiny_sdxl

BRIEF = PROJECT_ROOT / "examples" / "briefs" / "bakery.toml"
#: Runs the flyer command in a child process, then names the model libraries it imported.
RUN_AND_LIST_IMPORTS = (
    "import sys\n"
    "from flows.flyer import main\n"
    "code = main(sys.argv[1:])\n"
    "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'mlx') if m in sys.modules]\n"
    "print('model libraries imported:', ' '.join(heavy) or 'none')\n"
    "sys.exit(code)\n"
)
IMAGE_KEYS = {step.task_key for step in ROLE_STEPS["image"]}


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sdxl(tmp_path_factory.mktemp("workers-sdxl") / "tiny-sdxl")


@pytest.fixture
def image_env(tiny_sdxl: Path, tmp_path: Path, prefect_env: str) -> dict[str, str]:
    """Settings that paint with the tiny SDXL pipeline in process, shared by runs and workers."""
    settings = {
        "HYPERLOCAL_IMAGE__KIND": "diffusers",
        "HYPERLOCAL_IMAGE__MODEL": str(tiny_sdxl),
        "HYPERLOCAL_IMAGE__SIZE": "64x64",
        "HYPERLOCAL_QC__ENABLED": "false",
        # A new seed each run: every run paints its pictures anew.
        "HYPERLOCAL_IMAGE__SEED": "-1",
    }
    return {**os.environ, **settings}


def _served_keys(api_url: str) -> list[str]:
    response = httpx.post(f"{api_url}/task_workers/filter", json={}, timeout=10)
    response.raise_for_status()
    return [key for worker in response.json() for key in worker["task_keys"]]


@contextmanager
def _workers(count: int, env: dict[str, str], logs: Path, api_url: str) -> Iterator[list[Path]]:
    """Start ``count`` model workers; yield their log files once each serves the image steps.

    Stops them with SIGTERM on leaving and checks that each one exits cleanly (0).
    """
    processes: list[subprocess.Popen[bytes]] = []
    paths = [logs / f"worker-{n}.log" for n in range(count)]
    with ExitStack() as files:
        for path in paths:
            log = files.enter_context(path.open("wb"))
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "flows.workers"],
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        try:
            deadline = time.monotonic() + 120
            while sum(key in IMAGE_KEYS for key in _served_keys(api_url)) < count * len(IMAGE_KEYS):
                dead = [p for p in processes if p.poll() is not None]
                assert not dead, "a worker exited: " + paths[processes.index(dead[0])].read_text()
                assert time.monotonic() < deadline, "the workers never subscribed"
                time.sleep(0.2)
            yield paths
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            codes = [process.wait(timeout=60) for process in processes]
    assert codes == [0] * count, [path.read_text() for path in paths]


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_IMPORTS, "--brief", str(BRIEF), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_two_workers_paint_the_pictures_and_the_run_itself_loads_no_model(
    image_env: dict[str, str], prefect_env: str, tmp_path: Path
) -> None:
    env = {**image_env, "HYPERLOCAL_IMAGE__SEED": "7"}
    results = tmp_path / "cache" / "results"
    with _workers(2, env, tmp_path, prefect_env) as logs:
        run = _run(env, "--variants", "2", "--format", "square")
        cached_results = len(list(results.iterdir()))
        # --fresh: the workers compute every step again, and overwrite the same results.
        fresh = _run(env, "--variants", "2", "--format", "square", "--fresh")
        worker_output = "\n".join(path.read_text() for path in logs)
    for made in (run, fresh):
        assert made.returncode == 0, made.stdout + made.stderr
        # The run's own process never imported torch or diffusers: the workers paint.
        assert "model libraries imported: none" in made.stdout, made.stdout
        assert "4 steps ran on model workers" in made.stdout, made.stdout
    assert len(list(results.iterdir())) == cached_results
    # The workers' own lines, one per step: both variants' prompt fitting and picture, twice.
    done = re.findall(r"^(\w+)-\d+: (completed|from the cache)", worker_output, re.MULTILINE)
    assert sorted(done) == sorted(
        [("generate_image", "completed")] * 4 + [("fit_prompt", "completed")] * 4
    ), worker_output
    manifest = next((tmp_path / "output" / "flyer_runs").glob("*/manifest.json")).read_text()
    assert '"kind":"diffusers"' in manifest.replace(" ", "").replace("\n", "")


def test_a_run_that_requires_workers_and_finds_none_stops_in_one_line(
    image_env: dict[str, str],
) -> None:
    env = {**image_env, "HYPERLOCAL_MODEL_WORKERS": "required"}
    run = _run(env, "--variants", "1", "--format", "square")
    assert run.returncode == 2, run.stdout + run.stderr
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, run.stderr
    assert "no model worker serves the image steps" in errors[0]
    assert "python -m flows.workers" in errors[0]


def test_workers_refuse_to_start_with_no_model_to_keep_loaded(prefect_env: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flows.workers"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no model to keep loaded" in done.stderr
    assert "Traceback" not in done.stderr


def test_roles_go_to_workers_only_when_their_model_loads_in_process(
    monkeypatch: pytest.MonkeyPatch, tiny_sdxl: Path
) -> None:
    builtin = load_settings()
    # Builtin backends load nothing: nothing to hand over, whatever the server.
    assert deferred_roles(builtin, fresh=False, server="http://127.0.0.1:9/api") == frozenset()
    painting = load_settings(image__kind="diffusers", image__model=str(tiny_sdxl))
    # A temporary server: no worker can reach it, so the run paints itself ...
    assert deferred_roles(painting, fresh=False, server=None) == frozenset()
    # ... unless workers are required, which is a configuration error.
    required = painting.with_overrides(model_workers="required")
    with pytest.raises(ConfigurationError, match="temporary Prefect server"):
        deferred_roles(required, fresh=False, server=None)


def test_a_fresh_step_is_served_under_its_own_key_with_the_steps_own_cache_key() -> None:
    import inspect

    from flows.model_workers import worker_step
    from tasks.images import generate_image

    settings = load_settings()
    cached = worker_step(generate_image, settings, fresh=False)
    fresh = worker_step(generate_image, settings, fresh=True)
    assert cached.task_key == generate_image.task_key
    assert fresh.task_key.startswith("generate_image_fresh-")
    # Prefect's task worker re-creates served tasks with with_options: the key must hold.
    assert fresh.with_options(persist_result=True).task_key == fresh.task_key
    assert fresh.refresh_cache
    assert not cached.refresh_cache
    # The cache key hashes the source: the twin's is the step's own.
    assert inspect.getsource(fresh) == inspect.getsource(generate_image)


@pytest.mark.slow
def test_runs_from_a_served_deployment_hand_their_pictures_to_the_worker(
    image_env: dict[str, str], prefect_env: str, tmp_path: Path
) -> None:
    api = prefect_env
    started = time.time()
    log = tmp_path / "deploy.log"
    with _workers(1, image_env, tmp_path, api), log.open("wb") as sink:
        deploy = subprocess.Popen(
            [sys.executable, "-m", "flows.deploy"],
            cwd=PROJECT_ROOT,
            env=image_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deployment = _served_deployment(api, "make-flyer", since=started, log=log)
            brief = {"business": "Rosie's", "event": "Sourdough class", "place": "12 Market St"}
            parameters = {"brief": brief, "variants": 1, "formats": ["square"]}
            runs = [_start_run(api, deployment, parameters) for _ in range(2)]
            states = [_final_state(api, run) for run in runs]
        finally:
            deploy.send_signal(signal.SIGTERM)
            deploy.wait(timeout=60)
    assert states == ["COMPLETED", "COMPLETED"], f"{states}\n{log.read_text()[-3000:]}"
    # The first run's picture loaded the pipeline in the worker; the second found it loaded.
    worker_output = (tmp_path / "worker-0.log").read_text()
    assert worker_output.count("it stays loaded for later runs") == 1, worker_output
    manifests = [
        json.loads(path.read_text())
        for path in (tmp_path / "output" / "flyer_runs").glob("*/manifest.json")
    ]
    assert len(manifests) == 2
    for manifest in manifests:
        painting = [s for s in manifest["steps"] if s["step"] == "generate_image"]
        assert painting
        assert all(step["on_worker"] for step in painting), painting
        assert manifest["backends"]["image"]["kind"] == "diffusers"


def _served_deployment(api: str, name: str, since: float, log: Path) -> str:
    """Return the id of deployment ``name`` once a serving process has (re)registered it."""
    deadline = time.monotonic() + 120
    while True:
        found = httpx.post(
            f"{api}/deployments/filter",
            json={"deployments": {"name": {"any_": [name]}}},
            timeout=10,
        ).json()
        fresh = [d for d in found if _timestamp(d["updated"]) >= since]
        if fresh:
            return str(fresh[0]["id"])
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.5)


def _timestamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _final_state(api: str, run_id: str) -> str:
    deadline = time.monotonic() + 240
    while True:
        state = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state_type"]
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return str(state)
        assert time.monotonic() < deadline, f"run still {state}"
        time.sleep(0.5)


def _start_run(api: str, deployment: str, parameters: dict[str, object]) -> str:
    response = httpx.post(
        f"{api}/deployments/{deployment}/create_flow_run",
        json={"parameters": parameters},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
