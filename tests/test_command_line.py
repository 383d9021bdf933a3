"""The command lines' shared plumbing (``flows.cli``): exit codes, one-line errors,
``--verbose``, Ctrl-C and SIGTERM, and the backends a run builds before any work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backends import registry
from flows import cli
from flows.deploy import prepare
from hyperlocal.errors import (
    BriefError,
    ConfigurationError,
    InvalidModelOutput,
    ModelMissing,
    PictureRejected,
)
from hyperlocal.modelstore.server_process import ServerStartError
from hyperlocal.settings import Settings
from tests.child_output import read_until
from tests.conftest import PROJECT_ROOT

COMMANDS = ["flows.flyer", "flows.batch", "flows.models", "flows.servers", "flows.deploy"]


def _raises(exc: BaseException) -> Callable[[], int]:
    def body() -> int:
        raise exc

    return body


@pytest.mark.parametrize(
    ("exc", "code", "label"),
    [
        (BriefError("brief.toml: 'place' is missing"), 2, "brief error"),
        (ModelMissing("HYPERLOCAL_TEXT__MODEL=x is not downloaded"), 2, "missing model"),
        (ConfigurationError("set HYPERLOCAL_IMAGE__MODEL"), 2, "configuration error"),
        (InvalidModelOutput("no valid FlyerCopy after 3 attempts"), 1, "bad model output"),
        (PictureRejected("every picture failed QC"), 1, "picture rejected"),
        (ServerStartError("mlx_lm.server exited with code 1"), 1, "server error"),
    ],
)
def test_each_kind_of_fault_is_one_labelled_line_and_its_exit_code(
    capsys: pytest.CaptureFixture[str], exc: Exception, code: int, label: str
) -> None:
    assert cli.run_command(_raises(exc), verbose=False, prefect=False) == code
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"{label}: {exc}"]


def test_a_bug_is_one_internal_error_line_and_its_traceback_only_with_verbose(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bug = KeyError("variant")
    assert cli.run_command(_raises(bug), verbose=False, prefect=False) == cli.EXIT_FAILED
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("internal error: KeyError: 'variant'")
    assert "--verbose" in line
    with pytest.raises(KeyError):
        cli.run_command(_raises(bug), verbose=True, prefect=False)


def test_sigterm_is_an_interrupt_that_runs_every_finally_and_exits_130(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cleaned: list[str] = []

    def body() -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # the handler interrupts this at once
            return 0
        finally:
            cleaned.append("cluster stopped")

    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    assert cli.run_command(body, verbose=False, prefect=False) == cli.EXIT_INTERRUPTED
    assert time.monotonic() - started < 20
    assert cleaned == ["cluster stopped"]
    assert capsys.readouterr().err.strip() == cli.NOTHING_HALF_WRITTEN
    # Outside the command, SIGTERM is handled as before.
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_command_may_say_that_an_interrupt_is_a_clean_stop(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.run_command(
        _raises(KeyboardInterrupt()),
        verbose=False,
        prefect=False,
        interrupted=None,
        interrupted_exit=cli.EXIT_OK,
    )
    assert code == cli.EXIT_OK
    assert capsys.readouterr().err == ""


def test_invalid_flow_run_options_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from prefect.exceptions import ParameterTypeError

    error = ParameterTypeError("Flow run received invalid parameters:\n - variants: too many")
    assert cli.run_command(_raises(error), verbose=False) == cli.EXIT_CONFIGURATION
    assert capsys.readouterr().err.strip() == "invalid run options: variants: too many"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_verbose(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", command, "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--verbose" in result.stdout


def test_a_run_builds_the_vision_backend_only_when_pictures_are_checked() -> None:
    registry.clear()
    broken_vision = {"kind": "openai"}  # no base_url: cannot be built
    with pytest.raises(ConfigurationError):
        registry.build_run_backends(Settings(vision=broken_vision))
    off = Settings(vision=broken_vision, qc={"enabled": False})
    assert set(registry.build_run_backends(off)) == {"text", "image"}


def test_deploy_accepts_the_settings_a_run_accepts() -> None:
    registry.clear()
    # QC off: the vision settings do not matter to a run, so serving must not refuse them.
    prepare(Settings(vision={"kind": "openai"}, qc={"enabled": False}))
    with pytest.raises(ConfigurationError):
        prepare(Settings(vision={"kind": "openai"}))


def _two_brief_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "briefs"
    folder.mkdir()
    for number in (1, 2):
        (folder / f"brief{number}.toml").write_text(
            f'business = "Shop {number}"\nevent = "Open day {number}"\nplace = "1 High St"\n',
            encoding="utf-8",
        )
    return folder


@pytest.mark.slow
def test_a_batch_stopped_with_sigterm_cleans_up_exits_130_and_leaves_nothing_half_written(
    prefect_env: str, tmp_path: Path
) -> None:
    output = tmp_path / "output"
    argv = [sys.executable, "-m", "flows.batch", str(_two_brief_folder(tmp_path)), "--verbose"]
    argv += ["--variants", "3", "--format", "letter", "--format", "a4", "--format", "story"]
    env = {
        **os.environ,
        "HYPERLOCAL_OUTPUT_DIR": str(output),
        "HYPERLOCAL_CACHE_DIR": str(tmp_path / "cache"),
    }
    process = subprocess.Popen(
        argv,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output_lines = read_until(process, "render_flyer")
        process.send_signal(signal.SIGTERM)
        # Before flows.cli, SIGTERM killed the batch at once (exit -15), skipping its
        # finally blocks: a Dask cluster's shutdown among them.
        assert process.wait(timeout=120) == cli.EXIT_INTERRUPTED
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert cli.NOTHING_HALF_WRITTEN in output_lines.text_at_end()
    leftovers = [p for p in output.rglob("*") if p.name.startswith(".partial-")]
    assert leftovers == []
