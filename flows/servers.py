"""Start the local model servers the settings name, and stop them all on Ctrl-C.

    python -m flows.servers                 # text and vision servers from settings
    python -m flows.servers --role text     # only the text server

The text server serves ``text.model`` (``servers.text``: mlx_lm.server or
vllm-mlx), the vision server ``vision.model`` (``servers.vision``:
mlx_vlm.server or vllm-mlx with ``--mllm``), each on its own port with
continuous batching where the server has it (mlx_lm.server batches by itself;
vllm-mlx needs ``--continuous-batching``). Models are never downloaded here:
a Hugging Face id is served from its downloaded snapshot at the pinned
revision (a missing one names the command that fetches it), and the servers
run with ``HF_HUB_OFFLINE=1``. Once every server answers its health endpoint the
command prints the settings that point Hyperlocal at them, then waits; Ctrl-C
or SIGTERM stops every server with its children. A server that fails to start
is reported with the last lines of its log, and the others are stopped.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from flows.cli import EXIT_OK, add_verbose_flag, output_console, run_command
from hyperlocal.errors import ConfigurationError
from hyperlocal.modelstore.server_process import (
    RunningServer,
    ServerSpec,
    ServerStartError,
    start_all,
)
from hyperlocal.settings import Settings, load_settings

#: Role -> (settings name of the server kind, program shown, module or executable).
_PROGRAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mlx_lm": ("mlx_lm.server", (sys.executable, "-m", "mlx_lm.server")),
    "mlx_vlm": ("mlx_vlm.server", (sys.executable, "-m", "mlx_vlm.server")),
    "vllm_mlx": ("vllm-mlx", ("vllm-mlx", "serve")),
}
_INSTALL_HINT = {
    "mlx_lm": 'pip install "hyperlocal[mlx]"',
    "mlx_vlm": 'pip install "hyperlocal[mlx]"',
    "vllm_mlx": "pip install vllm-mlx (Apple Silicon)",
}


def _client_host(host: str) -> str:
    """The address to reach a server bound to ``host`` from this machine."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _hub_env() -> dict[str, str]:
    """Environment that keeps servers from downloading, with a hub cache that exists.

    mlx_lm.server lists the hub cache for ``/v1/models`` and fails when the
    folder does not exist (a fresh machine with only local model folders).
    """
    from huggingface_hub import constants

    Path(constants.HF_HUB_CACHE).mkdir(parents=True, exist_ok=True)
    return {"HF_HUB_OFFLINE": "1"}


def server_spec(role: str, kind: str, model: str, host: str, port: int) -> ServerSpec:
    """Return how to start the ``kind`` server for ``role`` on ``model`` at ``host:port``.

    Requests must name the model exactly as given here (mlx_vlm.server loads any
    other name as a second model).
    """
    program, command = _PROGRAMS[kind]
    argv = [*command]
    if kind == "vllm_mlx":
        argv += [model, "--continuous-batching"]
        if role == "vision":
            argv.append("--mllm")
    else:
        argv += ["--model", model]
    # Always pass --host: mlx_vlm.server binds every interface without it.
    argv += ["--host", host, "--port", str(port)]
    base_url = f"http://{_url_host(_client_host(host))}:{port}/v1"
    return ServerSpec(
        role=role,
        program=program,
        model=model,
        argv=tuple(argv),
        base_url=base_url,
        health_url=f"{base_url}/models",
        env=_hub_env(),
    )


def _model_folder(role: str, settings: Settings) -> Path:
    """The local folder of ``role``'s model: a path, or a downloaded hub id at its revision.

    Raises ``ModelMissing`` naming the pull command, or ``ConfigurationError``.
    """
    from hyperlocal import modelstore

    section = getattr(settings, role)
    purpose: modelstore.Purpose = "mlx-lm" if role == "text" else "mlx-vlm"
    setting = f"HYPERLOCAL_{role.upper()}__MODEL"
    return modelstore.model_folder(section.model, section.revision, setting, purpose)


def _check_port(host: str, port: int, setting: str) -> None:
    family = socket.AF_INET6 if ":" in _client_host(host) else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            sock.bind((_client_host(host) if host in ("0.0.0.0", "::") else host, port))
        except OSError:
            raise ConfigurationError(
                f"port {port} on {host} is in use (a server from an earlier start?): stop it "
                f"or set HYPERLOCAL_SERVERS__{setting}"
            ) from None


def planned_servers(
    settings: Settings, roles: Sequence[str] = ("text", "vision")
) -> list[ServerSpec]:
    """Return the servers settings name for ``roles``, checked.

    Raises ``ConfigurationError`` when nothing is to be served, a model is
    missing, a program is not installed or a port is taken.
    """
    servers = settings.servers
    plans = {
        "text": (servers.text, settings.text.model, servers.text_port, "TEXT_PORT"),
        "vision": (servers.vision, settings.vision.model, servers.vision_port, "VISION_PORT"),
    }
    specs: list[ServerSpec] = []
    for role in roles:
        kind, model, port, port_setting = plans[role]
        if kind == "none" or not model:
            continue
        # The server gets the folder itself, so it serves exactly the pinned revision.
        folder = _model_folder(role, settings)
        spec = server_spec(role, kind, str(folder), servers.host, port)
        _check_installed(kind, spec)
        _check_port(servers.host, port, port_setting)
        specs.append(spec)
    if not specs:
        raise ConfigurationError(
            "no server to start: set HYPERLOCAL_TEXT__MODEL and/or HYPERLOCAL_VISION__MODEL to an "
            "mlx model (a folder or a Hugging Face id), and keep HYPERLOCAL_SERVERS__TEXT / "
            "HYPERLOCAL_SERVERS__VISION other than none"
        )
    return specs


def _check_installed(kind: str, spec: ServerSpec) -> None:
    import importlib.util
    import shutil

    if spec.argv[0] == sys.executable:
        module = spec.argv[2].split(".")[0]
        present = importlib.util.find_spec(module) is not None
    else:
        present = shutil.which(spec.argv[0]) is not None
    if not present:
        raise ConfigurationError(
            f"{spec.name} is not installed: {_INSTALL_HINT[kind]}, or set "
            f"HYPERLOCAL_SERVERS__{spec.role.upper()} to another server"
        )


def settings_lines(specs: Sequence[ServerSpec]) -> list[str]:
    """The environment settings that point Hyperlocal at the started servers."""
    lines = []
    for spec in specs:
        section = spec.role.upper()
        lines.append(f"HYPERLOCAL_{section}__BASE_URL={spec.base_url}")
        lines.append(f"HYPERLOCAL_{section}__MODEL={shlex.quote(spec.model)}")
    return lines


def serve(specs: Sequence[ServerSpec], settings: Settings, console: Console) -> int:
    """Start ``specs``, print where they are, and wait until interrupted or one dies."""
    log_dir = settings.servers.log_dir
    for spec in specs:
        console.print(f"starting {escape(spec.name)}: {escape(shlex.join(spec.argv))}")
    servers: list[RunningServer] = start_all(specs, log_dir, settings.servers.startup_timeout_s)
    try:
        for server in servers:
            console.print(
                f"[green]ready[/] {escape(server.spec.name)} at {server.spec.base_url} "
                f"(pid {server.pid}, log {escape(str(server.log_path))})"
            )
        console.print("Point Hyperlocal at them (in another shell, or in .env):")
        console.print("  export " + " ".join(escape(line) for line in settings_lines(specs)))
        console.print("Ctrl-C stops them.")
        while True:
            for server in servers:
                if not server.alive():
                    raise ServerStartError(
                        f"{server.spec.name} exited with code {server.process.returncode}; "
                        f"its log ({server.log_path}) ends:\n{server.log_tail()}"
                    )
            time.sleep(0.5)
    finally:
        for server in servers:
            server.stop()
            console.print(f"stopped {escape(server.spec.name)} (pid {server.pid})")


def build_parser() -> argparse.ArgumentParser:
    """The command line's arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.servers",
        description="Start the local text and vision model servers the settings name; "
        "Ctrl-C stops them.",
    )
    parser.add_argument(
        "--role",
        choices=("text", "vision"),
        action="append",
        help="start only this role's server (repeatable; default: both)",
    )
    add_verbose_flag(parser, prefect=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code.

    0: stopped by Ctrl-C or SIGTERM; 1: a server failed to start or died;
    2: bad settings (one line, nothing started).
    """
    args = build_parser().parse_args(argv)
    # A shell starts background jobs (`... &`) with SIGINT ignored, and Python keeps
    # it so: `kill -INT` must still stop the servers.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return run_command(
        lambda: _main(args),
        verbose=args.verbose,
        prefect=False,
        interrupted=None,  # Ctrl-C is how the servers are meant to stop
        interrupted_exit=EXIT_OK,
    )


def _main(args: argparse.Namespace) -> int:
    settings = load_settings()
    specs = planned_servers(settings, args.role or ("text", "vision"))
    return serve(specs, settings, output_console())


if __name__ == "__main__":
    sys.exit(main())
