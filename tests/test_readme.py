"""The README's commands, run as written: every ``sh`` code block line has an entry here.

Each command in README.md's ``sh`` blocks (one logical line: backslash continuations
joined, ``# comments`` dropped) is a key of ``README_COMMANDS``. Its entry says how it
is run and what it must end with (``Run``, ``Serve``) or why it cannot
run on a machine with no GPU, no Metal, no model server and no package index
(``Skip``). A command added to the README without an entry, or an entry whose command
left the README, fails ``test_every_readme_command_has_an_entry``.

Commands run with ``bash -c`` exactly as the README spells them, in a temporary folder
laid out like a checkout (``.venv`` and ``examples`` are links to the real ones, plus
the files the command names, from ``tests/readme_fixtures``), with the builtin backends
and temporary output. A few things differ from a user's shell, all for speed or
isolation: every command reports to the session's Prefect server (so none starts its
own); all of them share one cache folder (so a step another command already made comes
from the cache: the batch briefs are briefs the single runs already made); a served
deployment is polled for new runs every second; and ``PYTHONPATH`` names the checkout,
which a command run in its root would import anyway.

``make demo`` runs in a folder with the checkout's ``Makefile`` and ``pyproject.toml``
linked in, and only when ``make`` would not install anything first.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT
from tests.test_ui import _post, _wait_for_state

README = PROJECT_ROOT / "README.md"
FIXTURES = Path(__file__).resolve().parent / "readme_fixtures"

#: What a default flyer run writes: two variants in letter (PDF and PNG) and square.
DEFAULT_RUN = (
    "flyer_runs/*/variant_01_letter.pdf",
    "flyer_runs/*/variant_01_letter.png",
    "flyer_runs/*/variant_02_square.png",
    "flyer_runs/*/contact_sheet.png",
    "flyer_runs/*/manifest.json",
)


# --- The README's commands -----------------------------------------------------------------


@dataclass(frozen=True)
class ReadmeCommand:
    """One logical command line of a README ``sh`` block."""

    text: str  # as bash reads it: continuations joined, the comment dropped
    line: int  # where it starts in README.md (1-based)

    @property
    def key(self) -> str:
        """The command with its whitespace normalised: how ``README_COMMANDS`` names it."""
        return normalise(self.text)


def normalise(text: str) -> str:
    """Collapse every run of whitespace to one space."""
    return " ".join(text.split())


def strip_comment(line: str) -> str:
    """Return ``line`` without its shell comment: a ``#`` outside quotes that starts a word."""
    quote = ""
    escaped = False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def readme_commands(markdown: str) -> list[ReadmeCommand]:
    """Return the commands of the ``sh`` fenced blocks of ``markdown``, in order."""
    commands: list[ReadmeCommand] = []
    fence: str | None = None  # the open fence's info string, None outside a block
    pending = ""
    start = 0
    for number, raw in enumerate(markdown.splitlines(), start=1):
        if raw.lstrip().startswith("```"):
            fence = raw.strip()[3:].strip() if fence is None else None
            pending = ""
            continue
        if fence is None or fence.split()[:1] != ["sh"]:
            continue
        line = strip_comment(raw)
        if not pending:
            start = number
        if line.endswith("\\"):
            # bash drops backslash-newline and reads on: the same logical line.
            pending += line[:-1]
            continue
        text = (pending + line).strip()
        pending = ""
        if text:
            commands.append(ReadmeCommand(text, start))
    return commands


# --- How each command is run ---------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Run the command to its end; it must exit with ``exit_code`` and write ``makes``.

    ``needs`` are files or folders of ``tests/readme_fixtures`` the command names,
    copied into its folder; ``links`` are files of the checkout linked there.
    ``makes`` are globs under the output folder that must match; ``says`` is text
    its output must contain. A ``links`` entry of ``Makefile`` runs only when the
    venv is installed as far as ``make`` is concerned (``make --question
    .venv/.installed``), so that the command never installs anything.
    """

    exit_code: int = 0
    needs: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    makes: tuple[str, ...] = ()
    says: tuple[str, ...] = ()
    timeout_s: float = 180


@dataclass(frozen=True)
class Then:
    """A command the README's prose gives (as inline code) for while a ``Serve`` serves.

    It must exit 0 having started a run of ``deployment``; the run must complete and
    write ``makes`` (globs under the output folder).
    """

    command: str
    deployment: str
    makes: tuple[str, ...] = ()
    timeout_s: float = 180


@dataclass(frozen=True)
class Serve:
    """A command that serves until stopped: started, checked, given SIGTERM, exit 0.

    It is serving once every deployment of ``deployments`` is on the Prefect server
    (registered after it started), each of ``schedules`` (deployment, cron, timezone)
    as given; the ``then`` commands run next, and SIGTERM must stop it with exit code 0.
    """

    deployments: tuple[str, ...]
    needs: tuple[str, ...] = ()
    schedules: tuple[tuple[str, str, str], ...] = ()
    then: tuple[Then, ...] = ()
    timeout_s: float = 90


@dataclass(frozen=True)
class Skip:
    """Not run here, for ``reason``."""

    reason: str


Entry = Run | Serve | Skip

DEPLOY = (
    'HYPERLOCAL_SCHEDULE__BRIEFS=briefs HYPERLOCAL_SCHEDULE__CRON="0 9 * * 1" '
    "HYPERLOCAL_SCHEDULE__TIMEZONE=Europe/London .venv/bin/python -m flows.deploy"
)
NEEDS_SERVER = "the session's own Prefect server on a free port stands in for it"
ENV_LINE = "a line of the `.env` file for the Apple Silicon models (Metal), not a command"
EXPORT_URL_MODEL = (
    "sets a variable for the next command, which downloads an SDXL checkpoint from a URL"
)
WORK_POOL = (
    "the work-pool route needs a Prefect worker process polling the pool and `prefect` on "
    "PATH (an activated venv); its deployments would take the names `make-flyer` and "
    "`weekly-flyers` that `flows.deploy` serves on the session's shared server. "
    "tests/test_deploy.py checks prefect.yaml's entrypoints and pools"
)

README_COMMANDS: dict[str, Entry] = {
    # Quick start
    "make demo": Run(
        links=("Makefile", "pyproject.toml"),
        makes=DEFAULT_RUN,
        says=("variant_01_letter.pdf",),
    ),
    "make test": Skip("is the test suite itself"),
    # Making flyers
    ".venv/bin/python -m flows.flyer --brief my-brief.toml": Run(
        needs=("my-brief.toml",), makes=("flyer_runs/*-canal-yard-bikes-*/manifest.json",)
    ),
    ".venv/bin/python -m flows.flyer --profile quality --variants 3": Run(
        makes=("flyer_runs/*/variant_03_letter.pdf", "flyer_runs/*/variant_03_square.png")
    ),
    ".venv/bin/python -m flows.flyer --format square --fresh": Run(
        makes=("flyer_runs/*/variant_02_square.png",)
    ),
    '.venv/bin/python -m flows.flyer --price "Free" --date "Sunday 3 May"': Run(makes=DEFAULT_RUN),
    '.venv/bin/python -m flows.flyer --business "Ada\'s Bikes" --event "Free bike check" '
    '--place "Canal Yard" --date "Sunday 3 May"': Run(
        makes=("flyer_runs/*-ada-s-bikes-free-bike-check/variant_01_letter.pdf",)
    ),
    ".venv/bin/python -m flows.flyer --check": Run(says=("healthy",)),
    ".venv/bin/python -m flows.flyer --format a4 --format story --print --crop-marks": Run(
        makes=("flyer_runs/*/variant_01_a4.pdf", "flyer_runs/*/variant_02_story.png")
    ),
    ".venv/bin/prefect server start &": Skip(
        f"starts a server on the fixed port 4200 in the background: {NEEDS_SERVER}"
    ),
    "export PREFECT_API_URL=http://127.0.0.1:4200/api": Skip(
        f"points the next commands at the server on port 4200: {NEEDS_SERVER}"
    ),
    ".venv/bin/python -m flows.flyer": Run(makes=DEFAULT_RUN),
    ".venv/bin/python -m flows.flyer --server start": Skip(
        "leaves a server running on Prefect's default port 4200 for good: "
        "tests/test_prefect_server.py runs it on a free port and stops it"
    ),
    ".venv/bin/python -m flows.flyer --server temporary": Run(makes=DEFAULT_RUN),
    ".venv/bin/python -m flows.workers --server start": Skip(
        "a long-lived worker that needs a model loaded in process: "
        "tests/test_model_workers.py runs two of them on loopback with a tiny SDXL pipeline"
    ),
    # The Prefect UI, schedules and batches
    DEPLOY: Serve(
        deployments=("make-flyer", "weekly-flyers"),
        needs=("briefs",),
        schedules=(("weekly-flyers", "0 9 * * 1", "Europe/London"),),
        then=(
            Then(
                ".venv/bin/prefect deployment run flyer-batch/weekly-flyers",
                deployment="weekly-flyers",
                makes=(
                    "batches/*/batch_summary.json",
                    "flyer_runs/*-puncture-repair-evening/manifest.json",
                ),
            ),
        ),
    ),
    ".venv/bin/python -m flows.batch briefs/ --max-parallel 2": Run(
        needs=("briefs",),
        makes=(
            "batches/*/batch_summary.json",
            "flyer_runs/*-puncture-repair-evening/manifest.json",
            "flyer_runs/*-free-bike-check/manifest.json",
        ),
    ),
    ".venv/bin/python -m flows.batch shops.csv --strict --format square": Run(
        needs=("shops.csv",),
        makes=(
            "batches/*/batch_summary.json",
            "flyer_runs/*-puncture-repair-evening/variant_01_square.png",
            "flyer_runs/*-free-bike-check/variant_01_square.png",
        ),
    ),
    ".venv/bin/python -m flows.batch events.json": Run(
        needs=("events.json",),
        makes=(
            "batches/*/batch_summary.json",
            "flyer_runs/*-puncture-repair-evening/manifest.json",
            "flyer_runs/*-free-bike-check/manifest.json",
        ),
    ),
    "HYPERLOCAL_TASK_RUNNER=dask HYPERLOCAL_DASK_WORKERS=2 .venv/bin/python -m flows.flyer": Skip(
        "the same command runs in tests/test_dask.py::"
        "test_one_brief_from_the_command_line_runs_on_a_local_dask_cluster, which also checks "
        "its progress display and shows the whole output when it fails"
    ),
    ".venv/bin/python -m flows.models list": Run(says=("No model to hold here",)),
    ".venv/bin/python -m flows.servers --help": Run(says=("usage: python -m flows.servers",)),
    "prefect work-pool create hyperlocal-process --type process": Skip(WORK_POOL),
    "HYPERLOCAL_HOME=$PWD prefect deploy -n make-flyer -n weekly-flyers": Skip(WORK_POOL),
    "HYPERLOCAL_HOME=$PWD prefect worker start --pool hyperlocal-process": Skip(WORK_POOL),
    # Settings
    "HYPERLOCAL_PROFILE=balanced HYPERLOCAL_IMAGE__STEPS=8 HYPERLOCAL_QC__MAX_ATTEMPTS=2 "
    ".venv/bin/python -m flows.flyer": Run(makes=("flyer_runs/*/variant_03_letter.pdf",)),
    # Language models for the copy
    "HYPERLOCAL_TEXT__PROVIDER=ollama HYPERLOCAL_TEXT__MODEL=llama3.2 "
    ".venv/bin/python -m flows.flyer --check": Skip(
        "needs an Ollama server with the llama3.2 model"
    ),
    "HYPERLOCAL_TEXT__BASE_URL=http://127.0.0.1:8080/v1 .venv/bin/python -m flows.flyer": Skip(
        "needs an OpenAI-compatible text server on port 8080"
    ),
    '.venv/bin/pip install -e ".[mlx]"': Skip("installs packages from a package index"),
    "HYPERLOCAL_TEXT__MODEL=~/models/Qwen2.5-3B-Instruct-4bit .venv/bin/python -m flows.flyer": (
        Skip("needs an mlx-lm model in ~/models (downloaded from the Hugging Face hub)")
    ),
    "HYPERLOCAL_VISION__BASE_URL=http://127.0.0.1:8081/v1 HYPERLOCAL_VISION__MODEL=qwen2-vl "
    "HYPERLOCAL_VISION__PROFILE=fast .venv/bin/python -m flows.flyer": Skip(
        "needs an OpenAI-compatible vision server with qwen2-vl on port 8081"
    ),
    "SDXL_API_URL=http://127.0.0.1:7860 HYPERLOCAL_IMAGE__SAMPLER=euler_a "
    "HYPERLOCAL_IMAGE__MODEL=sd_xl_turbo_1.0 .venv/bin/python -m flows.flyer --profile preview": (
        Skip("needs an AUTOMATIC1111-compatible image server with SDXL-Turbo on port 7860")
    ),
    "HYPERLOCAL_IMAGE__MODEL=~/models/sdxl-turbo .venv/bin/python -m flows.flyer": Skip(
        "needs SDXL-Turbo in ~/models (downloaded from the Hugging Face hub) and a GPU "
        "(CUDA or Metal) to paint in reasonable time"
    ),
    "HYPERLOCAL_IMAGE__MODEL=~/models/juggernautXL.safetensors "
    "HYPERLOCAL_IMAGE__CONFIG=~/models/sdxl-base-1.0 HYPERLOCAL_IMAGE__SAMPLER=dpmpp_2m_karras "
    'HYPERLOCAL_IMAGE__LORAS=\'[{"path": "~/loras/papercut.safetensors", "strength": 0.8}]\' '
    ".venv/bin/python -m flows.flyer --profile quality": Skip(
        "needs an SDXL checkpoint, its config folder and a LoRA in ~/models and ~/loras "
        "(downloads) and a GPU (CUDA or Metal)"
    ),
    # Real models: Apple Silicon
    "HYPERLOCAL_TEXT__MODEL=mlx-community/Qwen2.5-7B-Instruct-4bit": Skip(ENV_LINE),
    "HYPERLOCAL_VISION__MODEL=mlx-community/Qwen2-VL-7B-Instruct-4bit": Skip(ENV_LINE),
    "HYPERLOCAL_IMAGE__MODEL=stabilityai/sdxl-turbo": Skip(ENV_LINE),
    '.venv/bin/pip install -e ".[mlx,diffusers]" torch && .venv/bin/python -m flows.models pull': (
        Skip("installs packages from a package index and downloads 16 GB from the Hugging Face hub")
    ),
    ".venv/bin/python -m flows.flyer --profile balanced": Skip(
        "runs the mlx-lm, mlx-vlm and SDXL-Turbo models the `.env` above names (Apple Silicon, "
        "Metal); without that `.env` it is the builtin balanced run, which "
        "`HYPERLOCAL_PROFILE=balanced ... .venv/bin/python -m flows.flyer` runs here"
    ),
    # Real models: NVIDIA GPU
    '.venv/bin/pip install -e ".[diffusers]" torch && '
    "HYPERLOCAL_IMAGE__MODEL=stabilityai/sdxl-turbo .venv/bin/python -m flows.models pull": Skip(
        "installs packages from a package index and downloads 7 GB from the Hugging Face hub"
    ),
    "HYPERLOCAL_IMAGE__MODEL=stabilityai/sdxl-turbo .venv/bin/python -m flows.flyer "
    "--profile balanced": Skip("needs a CUDA GPU and SDXL-Turbo from the Hugging Face hub"),
    "export HYPERLOCAL_IMAGE__MODEL="
    "'https://civitai.com/api/download/models/NNNN?type=Model&format=SafeTensor'": Skip(
        EXPORT_URL_MODEL
    ),
    "export HYPERLOCAL_IMAGE__SHA256=...": Skip(EXPORT_URL_MODEL),
    "export HYPERLOCAL_MODELS__DOWNLOAD_TOKEN=...": Skip(EXPORT_URL_MODEL),
    "export HYPERLOCAL_IMAGE__CONFIG=stabilityai/stable-diffusion-xl-base-1.0": Skip(
        EXPORT_URL_MODEL
    ),
    ".venv/bin/python -m flows.models pull && .venv/bin/python -m flows.flyer": Skip(
        "downloads a 7 GB checkpoint from a URL and the SDXL config from the Hugging Face hub, "
        "then paints with it (a GPU)"
    ),
    # Development
    "make format": Skip(
        "rewrites the checkout's files in place; `make test` runs its check "
        "(ruff check and ruff format --check)"
    ),
}

COMMANDS = readme_commands(README.read_text(encoding="utf-8"))
TEXTS = {command.key: command.text for command in COMMANDS}


def entries_of(kind: type[Run] | type[Serve]) -> list[tuple[str, Entry]]:
    """Return the ``(command, entry)`` pairs of the table whose entry is a ``kind``."""
    return [(key, entry) for key, entry in README_COMMANDS.items() if isinstance(entry, kind)]


def test_every_readme_command_has_an_entry() -> None:
    """Every README command is run or skipped with a reason, and no entry is stale.

    A new route in the README fails here until this module runs it or says why not.
    """
    keys = [command.key for command in COMMANDS]
    assert len(keys) > 20, f"the README parser found only {keys}"
    unlisted = [f"README.md:{c.line}: {c.key}" for c in COMMANDS if c.key not in README_COMMANDS]
    stale = sorted(set(README_COMMANDS) - set(keys))
    assert not unlisted, "README commands with no entry in README_COMMANDS:\n" + "\n".join(unlisted)
    assert not stale, "README_COMMANDS entries no longer in the README:\n" + "\n".join(stale)
    for key, entry in README_COMMANDS.items():
        assert not isinstance(entry, Skip) or entry.reason.strip(), f"no reason for {key}"
    markdown = README.read_text(encoding="utf-8")
    for entry in README_COMMANDS.values():
        for then in entry.then if isinstance(entry, Serve) else ():
            assert f"`{then.command}`" in markdown, f"no longer in the README: {then.command}"
            assert then.deployment in entry.deployments, then


def test_the_parser_reads_commands_as_bash_does() -> None:
    """Continuations join, comments go (``#`` in quotes stays), and only ``sh`` blocks count."""
    markdown = (
        "```sh\n"
        "a --x 1   # a comment \\\n"
        "b --y 'not # a comment' \\\n"
        '  --z "#also" # here\n'
        "# a comment line\n"
        "\n"
        "url#frag\n"
        "```\n"
        "```toml\n"
        "key = 1\n"
        "```\n"
    )
    commands = readme_commands(markdown)
    assert [(c.key, c.line) for c in commands] == [
        ("a --x 1", 2),
        ("b --y 'not # a comment' --z \"#also\"", 3),
        ("url#frag", 7),
    ]


# --- Running them --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for every README command of the module."""
    return tmp_path_factory.mktemp("readme-cache")


@pytest.fixture
def here(
    isolated_env: Path, shared_cache: Path, prefect_env: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The folder a README command runs in, laid out like a checkout; the environment set.

    Builtin backends (no HYPERLOCAL_* model settings), this test's output folder, the
    module's shared cache and the session's Prefect server.
    """
    monkeypatch.setenv("HYPERLOCAL_CACHE_DIR", str(shared_cache))
    # The served runner looks for new flow runs every second, not every ten.
    monkeypatch.setenv("PREFECT_RUNNER_POLL_FREQUENCY", "1")
    # From the checkout, as `python -m` in its root would import it, whatever the venv has.
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PROJECT_ROOT), *filter(None, [path])]))
    folder = isolated_env / "here"
    folder.mkdir()
    (folder / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    (folder / "examples").symlink_to(PROJECT_ROOT / "examples", target_is_directory=True)
    return folder


def _provide(folder: Path, needs: tuple[str, ...], links: tuple[str, ...] = ()) -> None:
    for name in needs:
        source = FIXTURES / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        else:
            shutil.copy(source, folder / name)
    for name in links:
        (folder / name).symlink_to(PROJECT_ROOT / name)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _bash(text: str, folder: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", text],
        cwd=folder,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _check_makes(output: Path, makes: tuple[str, ...], what: str) -> None:
    missing = [pattern for pattern in makes if not list(output.glob(pattern))]
    written = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
    assert not missing, f"{what} wrote none of {missing}; it wrote {written}"


@pytest.mark.slow
@pytest.mark.parametrize(("key", "entry"), entries_of(Run), ids=[k for k, _ in entries_of(Run)])
def test_readme_command(key: str, entry: Run, here: Path, isolated_env: Path) -> None:
    """The README command runs as written and ends as the README says, with its files."""
    assert isinstance(entry, Run)
    text = TEXTS.get(key, key)
    _provide(here, entry.needs, entry.links)
    if "Makefile" in entry.links:
        if shutil.which("make") is None:
            pytest.skip("no make on PATH")
        current = subprocess.run(
            ["make", "--question", ".venv/.installed"], cwd=here, capture_output=True, timeout=60
        )
        if current.returncode != 0:
            pytest.skip(
                "make would install the venv first (.venv/.installed is older than "
                "pyproject.toml): the same flyer run is `.venv/bin/python -m flows.flyer`"
            )
    result = _bash(text, here, entry.timeout_s)
    shown = f"$ {text}\n--- stdout\n{_tail(result.stdout)}\n--- stderr\n{_tail(result.stderr)}"
    assert result.returncode == entry.exit_code, shown
    assert "Traceback" not in result.stdout + result.stderr, shown
    for words in entry.says:
        assert words in result.stdout + result.stderr, shown
    _check_makes(isolated_env / "output", entry.makes, text)


def _deployments(api: str, names: tuple[str, ...], since: datetime) -> dict[str, dict[str, Any]]:
    """Return the deployments of ``names`` registered or updated at ``since`` or later."""
    found = _post(api, "/deployments/filter", {"deployments": {"name": {"any_": list(names)}}})
    return {
        str(d["name"]): d
        for d in found
        if datetime.fromisoformat(str(d["updated"])) >= since  # not a stale one
    }


def _run_then(then: Then, deployment: dict[str, Any], here: Path) -> None:
    api = os.environ["PREFECT_API_URL"]
    result = _bash(then.command, here, 60)
    shown = f"$ {then.command}\n{_tail(result.stdout)}\n{_tail(result.stderr)}"
    assert result.returncode == 0, shown
    runs = _post(api, "/flow_runs/filter", {"deployments": {"id": {"any_": [deployment["id"]]}}})
    # The schedule's own runs are auto-scheduled; the command's run is the newest other one.
    started = [run for run in runs if not run["auto_scheduled"]]
    assert started, f"no run of {then.deployment} started\n{shown}"
    run = max(started, key=lambda r: str(r["created"]))
    final = _wait_for_state(api, str(run["id"]), timeout_s=then.timeout_s)
    assert final["state_type"] == "COMPLETED", f"{shown}\nthe run ended {final['state_type']}"


@pytest.mark.slow
@pytest.mark.parametrize(("key", "entry"), entries_of(Serve), ids=[k for k, _ in entries_of(Serve)])
def test_readme_serve_command(key: str, entry: Serve, here: Path, isolated_env: Path) -> None:
    """The deploy command registers both deployments and serves them until SIGTERM, exit 0.

    While it serves, the README's ``prefect deployment run`` starts the weekly batch,
    which this process runs to completion over the briefs folder.
    """
    assert isinstance(entry, Serve)
    api = os.environ["PREFECT_API_URL"]
    text = TEXTS.get(key, key)
    _provide(here, entry.needs)
    log = isolated_env / "serve.log"
    since = datetime.now(UTC) - timedelta(seconds=1)
    # bash runs a lone command in its own process (exec), so SIGTERM reaches Python itself.
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["bash", "-c", text],
            cwd=here,
            env=dict(os.environ),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + entry.timeout_s
        while len(found := _deployments(api, entry.deployments, since)) < len(entry.deployments):
            shown = f"$ {text}\n{_tail(log.read_text(errors='replace'))}"
            assert process.poll() is None, f"exited {process.returncode} before serving\n{shown}"
            assert time.monotonic() < deadline, f"not serving after {entry.timeout_s} s\n{shown}"
            time.sleep(0.2)
        for name, cron, timezone in entry.schedules:
            (schedule,) = found[name]["schedules"]
            assert (schedule["schedule"]["cron"], schedule["schedule"]["timezone"]) == (
                cron,
                timezone,
            )
        for then in entry.then:
            _run_then(then, found[then.deployment], here)
            _check_makes(isolated_env / "output", then.makes, then.command)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        assert code == 0, f"$ {text}\nexited {code} on SIGTERM\n{_tail(log.read_text())}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
