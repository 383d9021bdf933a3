"""``python -m flows.servers``: real mlx servers on loopback, a flyer run through them, stops."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.base import ArtRequest, CopyRequest
from backends.builtin_text import BuiltinCopywriter
from backends.vision_verdict import VisionVerdict
from flows.servers import server_spec
from hyperlocal.briefs.loading import load_brief
from hyperlocal.modelstore.server_process import ServerSpec, ServerStartError, start_server
from tests.conftest import PROJECT_ROOT
from tests.servers import free_port
from tests.tiny_models import build_answering_mlx_lm, build_tiny_mlx_vlm

BRIEF = PROJECT_ROOT / "examples" / "briefs" / "bakery.toml"
ASKED = '"POST /v1/chat/completions HTTP/1.1" 200'


def _processes_running(needle: str) -> list[str]:
    """Command lines of live processes that mention ``needle`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split(") ")[-1][:1]
        except OSError:
            continue
        line = " ".join(part.decode("utf-8", "replace") for part in argv if part)
        if needle in line and state != "Z":
            found.append(f"{entry.name} {line}")
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


class ServersCommand:
    """``python -m flows.servers`` in a child process, its output read line by line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flows.servers", *args],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C stops them"):
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout_s: float = 180) -> dict[str, str]:
        """Wait for the settings line; return it as environment variables."""
        assert self._ready.wait(timeout_s), self.lines
        exports = [line for line in self.lines if line.strip().startswith("export ")]
        assert exports, "\n".join(self.lines) + self.stderr()
        pairs = shlex.split(exports[0].strip().removeprefix("export "))
        return dict(pair.split("=", 1) for pair in pairs)

    def stop(self, signum: int) -> int:
        """Send ``signum`` (Ctrl-C is SIGINT) and return the exit code."""
        self.process.send_signal(signum)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read() if self.process.poll() is not None else ""

    def close(self) -> None:
        """Stop the command the way a user would, and kill it only if that fails."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Tiny text and vision models that answer validly for the example brief."""
    brief = load_brief(BRIEF, allowed_dirs=[BRIEF.parent])
    writer = BuiltinCopywriter()
    copy = writer.write_copy(CopyRequest(brief=brief, variant=1, variants=1))
    art = writer.direct_art(ArtRequest(brief=brief, copy=copy, variant=1))
    answers = {
        "You art-direct": art.model_dump_json(),
        "You write the words of flyers": copy.model_dump_json(by_alias=True),
    }
    verdict = VisionVerdict(
        has_text=False,
        shows_subject=True,
        text_zone_calm=True,
        has_defects=False,
        score=8,
        reason="A calm picture of the subject.",
    )
    root = tmp_path_factory.mktemp("served-models")
    return (
        build_answering_mlx_lm(root / "text", answers),
        build_tiny_mlx_vlm(root / "vision", {"You check pictures": verdict.model_dump_json()}),
    )


def _server_env(tmp_path: Path, text: Path | None, vision: Path | None) -> dict[str, str]:
    hub = tmp_path / "hub"
    hub.mkdir(exist_ok=True)
    env = {
        "HF_HUB_CACHE": str(hub),
        "HYPERLOCAL_SERVERS__TEXT_PORT": str(free_port()),
        "HYPERLOCAL_SERVERS__VISION_PORT": str(free_port()),
        "HYPERLOCAL_SERVERS__LOG_DIR": str(tmp_path / "logs"),
        "HYPERLOCAL_TEXT__MODEL": str(text or ""),
        "HYPERLOCAL_VISION__MODEL": str(vision or ""),
    }
    return {key: value for key, value in env.items() if value}


@pytest.fixture
def servers_command() -> Iterator[list[ServersCommand]]:
    started: list[ServersCommand] = []
    yield started
    for command in started:
        command.close()


@pytest.mark.slow
def test_servers_start_serve_a_flyer_run_and_ctrl_c_leaves_no_process(
    tmp_path: Path, models: tuple[Path, Path], servers_command: list[ServersCommand]
) -> None:
    text_model, vision_model = models
    command = ServersCommand(_server_env(tmp_path, text_model, vision_model))
    servers_command.append(command)
    exported = command.wait_ready()
    assert set(exported) == {
        "HYPERLOCAL_TEXT__BASE_URL",
        "HYPERLOCAL_TEXT__MODEL",
        "HYPERLOCAL_VISION__BASE_URL",
        "HYPERLOCAL_VISION__MODEL",
    }
    pids = [int(m) for line in command.lines for m in re.findall(r"\(pid (\d+),", line)]
    assert len(pids) == 2

    argv = [sys.executable, "-m", "flows.flyer", "--brief", str(BRIEF), "--format", "square"]
    run = subprocess.run(
        [*argv, "--variants", "1"],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            **exported,
            "HYPERLOCAL_IMAGE__KIND": "builtin",
            "HYPERLOCAL_VISION__PROFILE": "fast",
            "HYPERLOCAL_OUTPUT_DIR": str(tmp_path / "output"),
            "HYPERLOCAL_CACHE_DIR": str(tmp_path / "cache"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    manifest = json.loads(next((tmp_path / "output").rglob("manifest.json")).read_text())
    # Every request counts, the structured-output probes of each server included.
    requests = {
        role: sum(
            s["work"]["requests"] for s in manifest["steps"] if s["step"] in steps and s["work"]
        )
        for role, steps in (("text", ("write_copy", "direct_art")), ("vision", ("check_image",)))
    }
    assert requests["text"] >= 2
    assert requests["vision"] >= 1
    calls = f"model calls: text {requests['text']}, image 1, vision {requests['vision']}"
    assert calls in run.stdout
    assert manifest["backends"]["text"]["kind"] == "openai"
    assert manifest["backends"]["vision"]["kind"] == "openai"
    logs = tmp_path / "logs"
    # What the run says it asked is what the text server answered (probes included).
    assert (logs / "text-server.log").read_text().count(ASKED) == requests["text"]
    assert (logs / "vision-server.log").read_text().count(ASKED) >= 1
    (attempt,) = manifest["variants"][0]["formats"][0]["attempts"]
    assert attempt["qc"]["score"] == 8

    assert command.stop(signal.SIGINT) == 0
    assert [line for line in command.lines if line.startswith("stopped")] == [
        f"stopped text server (mlx_lm.server) (pid {pids[0]})",
        f"stopped vision server (mlx_vlm.server) (pid {pids[1]})",
    ]
    left = _processes_running(str(text_model)) + _processes_running(str(vision_model))
    print(f"\nprocesses left after Ctrl-C: {left or 'none'}")
    assert left == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()


@pytest.mark.slow
def test_sigterm_stops_the_servers_like_ctrl_c(
    tmp_path: Path, models: tuple[Path, Path], servers_command: list[ServersCommand]
) -> None:
    text_model, _ = models
    command = ServersCommand(_server_env(tmp_path, text_model, None))
    servers_command.append(command)
    exported = command.wait_ready()
    assert set(exported) == {"HYPERLOCAL_TEXT__BASE_URL", "HYPERLOCAL_TEXT__MODEL"}
    assert command.stop(signal.SIGTERM) == 0
    assert _processes_running(str(text_model)) == []


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_servers_do_not_outlive_a_killed_command(
    tmp_path: Path, models: tuple[Path, Path], servers_command: list[ServersCommand]
) -> None:
    text_model, _ = models
    command = ServersCommand(_server_env(tmp_path, text_model, None))
    servers_command.append(command)
    command.wait_ready()
    assert len(_processes_running(str(text_model))) == 1
    command.process.kill()  # SIGKILL: no cleanup code runs
    command.process.wait()
    deadline = time.monotonic() + 20
    while _processes_running(str(text_model)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_running(str(text_model)) == []


@pytest.mark.slow
def test_sigint_stops_the_servers_even_when_started_as_a_background_job(
    tmp_path: Path, models: tuple[Path, Path]
) -> None:
    text_model, _ = models
    env = {**os.environ, **_server_env(tmp_path, text_model, None)}
    # `sh -c 'cmd &'` starts cmd with SIGINT ignored, as any shell does for background jobs.
    launcher = subprocess.run(
        ["sh", "-c", f"{shlex.quote(sys.executable)} -m flows.servers > out.txt 2>&1 & echo $!"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(launcher.stdout.strip())
    out = tmp_path / "out.txt"
    deadline = time.monotonic() + 120
    while "Ctrl-C stops them" not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(_processes_running(str(text_model))) == 1, out.read_text()
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "stopped text server (mlx_lm.server)" in out.read_text()
    assert _processes_running(str(text_model)) == []


@pytest.mark.slow
def test_a_server_that_fails_to_start_is_reported_with_its_log_and_the_other_is_stopped(
    tmp_path: Path, models: tuple[Path, Path], servers_command: list[ServersCommand]
) -> None:
    text_model, _ = models
    broken = tmp_path / "broken-vlm"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no_such_architecture"}')
    command = ServersCommand(_server_env(tmp_path, text_model, broken))
    servers_command.append(command)
    code = command.process.wait(timeout=180)
    command._reader.join(timeout=10)
    error = command.stderr()
    assert code == 1, "\n".join(command.lines) + error
    assert error.startswith("server error: vision server (mlx_vlm.server) exited with code")
    assert "its log (" in error
    # The server's own last lines say why.
    assert "Application startup failed" in error
    assert _processes_running(str(text_model)) == []
    assert _processes_running(str(broken)) == []


def _servers_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m flows.servers`` to its end (for the cases that stop before serving)."""
    return subprocess.run(
        [sys.executable, "-m", "flows.servers", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_nothing_to_serve_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = _servers_cli(
        {**os.environ, "HYPERLOCAL_TEXT__MODEL": "", "HYPERLOCAL_VISION__MODEL": ""}
    )
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: no server to start")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_hub_model_that_is_not_downloaded_names_the_pull_command(tmp_path: Path) -> None:
    result = _servers_cli(
        {
            **os.environ,
            "HF_HUB_CACHE": str(tmp_path / "hub"),
            "HYPERLOCAL_TEXT__MODEL": "mlx-community/Qwen2.5-7B-Instruct-4bit",
        },
        "--role",
        "text",
    )
    assert result.returncode == 2
    assert "python -m flows.models pull" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_model_folder_and_a_taken_port_are_one_line_each(tmp_path: Path) -> None:
    missing = _servers_cli(
        {**os.environ, "HYPERLOCAL_TEXT__MODEL": str(tmp_path / "nowhere")}, "--role", "text"
    )
    assert missing.returncode == 2
    assert "nowhere" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        folder = tmp_path / "model"
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        busy = _servers_cli(
            {
                **os.environ,
                "HYPERLOCAL_TEXT__MODEL": str(folder),
                "HYPERLOCAL_SERVERS__TEXT_PORT": str(port),
            },
            "--role",
            "text",
        )
    assert busy.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in busy.stderr
    assert "HYPERLOCAL_SERVERS__TEXT_PORT" in busy.stderr


def test_vllm_mlx_is_started_with_continuous_batching_and_mllm_for_vision() -> None:
    text = server_spec("text", "vllm_mlx", "mlx-community/Qwen3-4B-4bit", "127.0.0.1", 8000)
    vision = server_spec("vision", "vllm_mlx", "/models/qwen2-vl", "0.0.0.0", 8001)
    assert text.argv[:3] == ("vllm-mlx", "serve", "mlx-community/Qwen3-4B-4bit")
    assert "--continuous-batching" in text.argv
    assert "--mllm" not in text.argv
    assert "--mllm" in vision.argv
    assert vision.argv[-4:] == ("--host", "0.0.0.0", "--port", "8001")
    # A server bound to every interface is reached on loopback.
    assert vision.base_url == "http://127.0.0.1:8001/v1"
    assert text.env["HF_HUB_OFFLINE"] == "1"


# A server that spawns a helper process of its own, like vllm-mlx's engine workers.
_FAMILY_SERVER = textwrap.dedent(
    """
    import http.server, subprocess, sys
    marker = "# grand" + "child"  # only the grandchild's command line holds it whole
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600) " + marker])
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


def test_stopping_a_server_stops_the_processes_it_started(tmp_path: Path) -> None:
    port = free_port()
    spec = ServerSpec(
        role="test",
        program="family",
        argv=(sys.executable, "-c", _FAMILY_SERVER, str(port)),
        base_url=f"http://127.0.0.1:{port}",
        health_url=f"http://127.0.0.1:{port}/v1/models",
    )
    server = start_server(spec, tmp_path / "family.log")
    with server:
        server.wait_healthy(30)
        assert len(_processes_running("# grandchild")) == 1
    assert _processes_running("# grandchild") == []
    assert not server.alive()


def test_a_server_that_never_answers_is_stopped_after_its_timeout(tmp_path: Path) -> None:
    spec = ServerSpec(
        role="test",
        program="silent",
        argv=(sys.executable, "-c", "import time; print('loading weights...'); time.sleep(600)"),
        base_url="http://127.0.0.1:9/v1",
        health_url="http://127.0.0.1:9/v1/models",
        env={"PYTHONUNBUFFERED": "1"},
    )
    server = start_server(spec, tmp_path / "silent.log")
    with pytest.raises(ServerStartError, match=r"(?s)did not answer in 2 s.*loading weights"):
        server.wait_healthy(2)
    assert not server.alive()
