"""A model server killed mid-run: one clear failure, then a rerun that redoes only the rest.

A real ``mlx_lm.server`` on loopback serves a hand-built tiny model that
answers every copy and art-direction request with valid JSON (random weights
answer junk, so no step would ever finish). The test kills the server with
SIGKILL the moment the first step's result is saved; the command fails after
its retries with one line; the server is started again on the same port; the
same command completes. The text steps that finished before the crash are
read back from the cache folder; the requests of the rerun are counted in the
restarted server's own log: together they make exactly the text steps of one
run, so only the steps that had not finished were computed again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backends.base import ArtRequest, CopyRequest
from backends.builtin_text import BuiltinCopywriter
from hyperlocal.briefs.loading import load_brief
from hyperlocal.models import RunManifest
from hyperlocal.modelstore.server_process import RunningServer
from tests.conftest import PROJECT_ROOT
from tests.servers import free_port, model_server
from tests.tiny_models import build_answering_mlx_lm

pytestmark = pytest.mark.slow

BRIEF = PROJECT_ROOT / "examples" / "briefs" / "bakery.toml"
VARIANTS = 2
#: One copy and one art direction per variant.
TEXT_STEPS = 2 * VARIANTS
#: mlx_lm.server logs each chat request as it starts answering it.
ASKED = '"POST /v1/chat/completions HTTP/1.1" 200'


def _answers() -> dict[str, str]:
    """Valid answers for the example brief, keyed by a phrase of each system prompt."""
    brief = load_brief(BRIEF, allowed_dirs=[BRIEF.parent])
    writer = BuiltinCopywriter()
    copy = writer.write_copy(CopyRequest(brief=brief, variant=1, variants=VARIANTS))
    art = writer.direct_art(ArtRequest(brief=brief, copy=copy, variant=1))
    return {
        "You art-direct": art.model_dump_json(),
        "You write the words of flyers": copy.model_dump_json(by_alias=True),
    }


def _asked(server: RunningServer) -> int:
    return server.log_path.read_text(encoding="utf-8", errors="replace").count(ASKED)


def _saved_text_steps(results: Path) -> int:
    """Count the copy and art-direction results a run left in the cache."""
    from prefect.results import ResultRecord

    kinds = [
        type(ResultRecord.deserialize(path.read_bytes()).result).__name__
        for path in results.iterdir()
        if path.is_file()
    ]
    return sum(kind in ("WrittenCopy", "DirectedArt") for kind in kinds)


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "flows.flyer", "--brief", str(BRIEF)]
    argv += ["--variants", str(VARIANTS), "--format", "square"]
    return subprocess.run(
        argv,
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _kill_after_first_result(server: RunningServer, results: Path, stop: threading.Event) -> None:
    while not stop.is_set():
        if results.is_dir() and any(results.iterdir()):
            server.kill()
            return
        time.sleep(0.005)


def test_a_killed_server_fails_the_run_clearly_and_the_rerun_redoes_only_the_rest(
    tmp_path: Path,
) -> None:
    model = build_answering_mlx_lm(tmp_path / "model", _answers())
    port = free_port()
    env = {
        "HYPERLOCAL_TEXT__KIND": "openai",
        "HYPERLOCAL_TEXT__BASE_URL": f"http://127.0.0.1:{port}/v1",
        "HYPERLOCAL_TEXT__MODEL": str(model),
        "HYPERLOCAL_TEXT__TIMEOUT_S": "60",
        "HYPERLOCAL_IMAGE__KIND": "builtin",
        "HYPERLOCAL_VISION__KIND": "heuristic",
        "HYPERLOCAL_RETRY__ATTEMPTS": "2",
        "HYPERLOCAL_RETRY__DELAY_S": "0.2",
        "HYPERLOCAL_RETRY__JITTER": "0",
        "HYPERLOCAL_OUTPUT_DIR": str(tmp_path / "output"),
        "HYPERLOCAL_CACHE_DIR": str(tmp_path / "cache"),
    }

    with model_server("text", "mlx_lm", model, port=port, log_dir=tmp_path / "first") as first:
        stop = threading.Event()
        results = tmp_path / "cache" / "results"
        killer = threading.Thread(target=_kill_after_first_result, args=(first, results, stop))
        killer.start()
        try:
            crashed = _run(env)
        finally:
            stop.set()
            killer.join()
        assert not first.alive(), "the run finished before the server could be killed"
        asked_before = _asked(first)

    output = crashed.stdout + crashed.stderr
    assert crashed.returncode == 1, output
    assert "Traceback" not in output
    error_lines = [line for line in crashed.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, output
    assert error_lines[0].startswith("temporary failure: cannot reach http://127.0.0.1:")
    assert "is the server running?" in error_lines[0]
    assert not list((tmp_path / "output").rglob("manifest.json"))
    finished_before = _saved_text_steps(results)
    assert 1 <= finished_before < TEXT_STEPS
    assert asked_before >= finished_before

    with model_server("text", "mlx_lm", model, port=port, log_dir=tmp_path / "second") as second:
        resumed = _run(env)
        asked_after = _asked(second)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    counted = re.search(r"model calls: text (\d+)", resumed.stdout)
    assert counted, resumed.stdout
    # What the flow says it asked (structured-output probes included) is what the
    # restarted server was asked ...
    assert int(counted.group(1)) == asked_after
    # ... and only the text steps that had not finished before the crash were computed.
    manifest = RunManifest.model_validate_json(
        next((tmp_path / "output").rglob("manifest.json")).read_text()
    )
    text_steps = [s for s in manifest.steps if s.step in ("write_copy", "direct_art")]
    computed = [s for s in text_steps if not s.cached]
    assert len(text_steps) == TEXT_STEPS
    assert finished_before + len(computed) == TEXT_STEPS
    assert sum(s.work.requests for s in computed if s.work) == asked_after
    print(
        f"\nserver killed after {finished_before} of {TEXT_STEPS} text steps finished "
        f"({asked_before} requests reached it); the rerun asked {asked_after}"
    )
    pngs = list((tmp_path / "output").rglob("variant_0*_square.png"))
    assert len(pngs) == VARIANTS
