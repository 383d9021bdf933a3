"""The cache under concurrent runs and after damage: each step computed once, never a crash."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prefect.results import ResultRecord
from rich.console import Console

from flows.flyer import flyer, report
from hyperlocal.briefs.loading import load_brief
from hyperlocal.models import RunManifest
from tasks import caching
from tasks.caching import CacheLockManager, discard_if_damaged

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BRIEF_FILE = PROJECT_ROOT / "examples" / "briefs" / "bakery.toml"
CLI = [sys.executable, "-m", "flows.flyer", "--variants", "1", "--format", "square"]
COPY_SECONDS = 3.0
MEET_TIMEOUT_S = 60
# The command line with counted builtin backends whose copywriting takes COPY_SECONDS, so
# two runs started together overlap. With HYPERLOCAL_TEST_MEET set to a folder, the
# copywriter instead holds its step until another process is seen waiting for a cache lock
# this process holds (each process notes the locks it finds taken in that folder): the
# runs surely meet, however far apart they start, and no timing is assumed.
SLOW_CLI = f"""
import json, os, sys, time
from pathlib import Path
from backends.builtin_text import BuiltinCopywriter
from tasks import caching
from tests import counted_backends
meet = os.environ.get("HYPERLOCAL_TEST_MEET")
acquire = caching.CacheLockManager.acquire_lock
def noting_acquire(self, key, holder, acquire_timeout=None, hold_timeout=None):
    if meet and self.is_locked(key) and not self.is_lock_holder(key, holder):
        note = Path(meet) / f"{{os.getpid()}}-{{key}}"
        note.with_suffix(".tmp").write_text(str(self._path(key)))
        note.with_suffix(".tmp").replace(note)
    return acquire(self, key, holder, acquire_timeout, hold_timeout)
caching.CacheLockManager.acquire_lock = noting_acquire
def another_process_waits():
    held = {{str(path) for path in caching._held}}
    return any(n.read_text() in held for n in Path(meet).iterdir() if n.suffix != ".tmp")
write = BuiltinCopywriter.write_copy
def slow(self, *args, **kwargs):
    if not meet:
        time.sleep({COPY_SECONDS})
        return write(self, *args, **kwargs)
    deadline = time.monotonic() + {MEET_TIMEOUT_S}
    while not another_process_waits():
        if time.monotonic() > deadline:
            print("NOBODY WAITED", flush=True)
            break
        time.sleep(0.05)
    else:
        print("MET A WAITER", flush=True)
    return write(self, *args, **kwargs)
BuiltinCopywriter.write_copy = slow
counted_backends.install()
from flows.flyer import main
code = main(sys.argv[1:])
print("CALLS " + json.dumps(dict(counted_backends.Counted.calls)))
sys.exit(code)
"""


def _start(*extra: str, meet: Path | None = None) -> subprocess.Popen[str]:
    # The environment (cache, output, PREFECT_API_URL of the session's server) is
    # the test's, set by the fixtures.
    env = dict(os.environ)
    if meet is not None:
        env["HYPERLOCAL_TEST_MEET"] = str(meet)
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_CLI, *CLI[3:], *extra],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(*runs: subprocess.Popen[str]) -> list[tuple[Counter[str], str]]:
    """Wait for the runs; return each one's backend calls and output. Fails on a non-zero exit."""
    finished = []
    for run in runs:
        output, _ = run.communicate(timeout=120 + MEET_TIMEOUT_S)
        assert run.returncode == 0, output
        last = output.strip().splitlines()[-1]
        assert last.startswith("CALLS "), output
        finished.append((Counter(json.loads(last.removeprefix("CALLS "))), output))
    return finished


def _manifests(output_dir: Path) -> list[RunManifest]:
    folders = sorted((output_dir / "flyer_runs").iterdir())
    return [RunManifest.model_validate_json((f / "manifest.json").read_text()) for f in folders]


def _computed(manifest: RunManifest) -> Counter[str]:
    # publish is never cached: every run writes its own folder.
    return Counter(s.step for s in manifest.steps if not s.cached and s.step != "publish")


@pytest.mark.slow
def test_two_runs_of_one_brief_at_once_compute_each_step_once(
    prefect_env: str, isolated_env: Path
) -> None:
    meet = isolated_env / "meet"
    meet.mkdir()
    (first_calls, first_output), (second_calls, second_output) = _finish(
        _start(meet=meet), _start(meet=meet)
    )

    # The runs met: one held the copywriting step until the other was seen waiting for its
    # lock. Without the lock, both would compute the copy (and wait in vain for a waiter).
    outputs = first_output + second_output
    assert outputs.splitlines().count("MET A WAITER") == 1, outputs
    assert "NOBODY WAITED" not in outputs
    # One model call per step across both runs.
    assert first_calls + second_calls == Counter(write_copy=1, direct_art=1, generate=1, check=1)

    manifests = _manifests(isolated_env / "output")
    assert len(manifests) == 2
    steps = Counter(s.step for s in manifests[0].steps if s.step != "publish")
    assert steps == Counter(s.step for s in manifests[1].steps if s.step != "publish")
    # Across both runs each step ran once; the other run read its result.
    assert _computed(manifests[0]) + _computed(manifests[1]) == steps
    assert all(count == 1 for count in steps.values())
    flyers = [
        (isolated_env / "output" / "flyer_runs" / folder / "variant_01_square.png").read_bytes()
        for folder in sorted(p.name for p in (isolated_env / "output" / "flyer_runs").iterdir())
    ]
    assert flyers[0] == flyers[1]
    assert manifests[0].variants[0].copy_ == manifests[1].variants[0].copy_


@pytest.mark.slow
def test_two_briefs_at_once_do_not_interfere(prefect_env: str, isolated_env: Path) -> None:
    bakery, pasta = _start(), _start("--event", "Fresh pasta night")
    _finish(bakery, pasta)

    manifests = {m.brief.event: m for m in _manifests(isolated_env / "output")}
    assert set(manifests) == {load_brief(BRIEF_FILE).event, "Fresh pasta night"}
    for manifest in manifests.values():
        # Each run has its own copy; steps with equal inputs (the builtin art
        # direction ignores the event, so fit_prompt) may be shared, and are right to be.
        assert manifest.variants[0].copy_.headline == manifest.brief.event
        assert manifest.computed_steps + manifest.cached_steps == len(manifest.steps)
        assert manifest.files
    copies = {event: m.variants[0].copy_ for event, m in manifests.items()}
    assert copies[load_brief(BRIEF_FILE).event] != copies["Fresh pasta night"]


@pytest.mark.slow
def test_damaged_cached_results_are_recomputed_with_a_warning(
    prefect_env: str, isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    brief = load_brief(BRIEF_FILE, allowed_dirs=[PROJECT_ROOT / "examples"])
    options = {"variants": 1, "formats": ["square"], "assets_from": str(BRIEF_FILE.parent)}
    first = flyer(brief=brief, **options)
    results = sorted((isolated_env / "cache" / "results").iterdir())
    assert len(results) >= 6
    for index, path in enumerate(results):
        content = path.read_bytes()
        # Half truncated (a crash mid-write), half garbage of the same length.
        path.write_bytes(content[: len(content) // 2] if index % 2 else os.urandom(len(content)))

    with caplog.at_level("WARNING"):
        second = flyer(brief=brief, **options)

    damaged = [r for r in caplog.records if "is damaged" in r.getMessage()]
    assert sorted(r.getMessage().split()[2] for r in damaged) == [p.name for p in results]
    # The manifest and the command line's summary say so too.
    assert second.manifest.damaged_cache == [p.name for p in results]
    shown = io.StringIO()
    report(Console(file=shown, width=200), second, 1.0)
    assert (
        f"warning: {len(results)} cached results were damaged (cut short or corrupted) and "
        "computed again"
    ) in shown.getvalue()
    assert second.manifest.cached_steps == 0
    assert (second.folder / "variant_01_square.png").read_bytes() == (
        first.folder / "variant_01_square.png"
    ).read_bytes()
    for path in results:  # written again, whole
        ResultRecord.deserialize(path.read_bytes())
    third = flyer(brief=brief, **options)
    assert third.manifest.computed_steps == sum(s.step == "publish" for s in third.manifest.steps)
    assert third.manifest.damaged_cache == []


def test_discard_if_damaged_keeps_good_and_missing_files(tmp_path: Path) -> None:
    record = ResultRecord.deserialize(
        b'{"metadata":{"storage_key":"k","expiration":null,"serializer":{"type":"json"},'
        b'"prefect_version":"3.8.8","storage_block_id":null},"result":"[1, 2]"}'
    )
    good = tmp_path / "good"
    good.write_bytes(record.serialize())
    assert discard_if_damaged(good) is False
    assert good.exists()
    assert discard_if_damaged(tmp_path / "missing") is False
    bad = tmp_path / "bad"
    bad.write_bytes(record.serialize()[:20])
    assert discard_if_damaged(bad) is True
    assert not bad.exists()


def test_a_lock_held_by_another_process_waits_and_dies_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(caching, "_lock_folder", lambda: tmp_path)
    monkeypatch.setattr(caching, "_result_folder", lambda: tmp_path / "results")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
            str(tmp_path / "key.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        locks = CacheLockManager()
        assert locks.is_locked("key")
        started = time.monotonic()
        assert locks.acquire_lock("key", "me", acquire_timeout=0.3) is False
        assert time.monotonic() - started >= 0.3
    finally:
        holder.kill()  # a crash: the lock file stays, the lock does not
        holder.wait()
    assert (tmp_path / "key.lock").exists()
    assert locks.acquire_lock("key", "me", acquire_timeout=5) is True
    assert locks.is_lock_holder("key", "me")
    assert not locks.is_lock_holder("key", "other")
    locks.release_lock("key", "me")
    assert not locks.is_locked("key")
    with pytest.raises(ValueError, match="No lock held"):
        locks.release_lock("key", "me")


def test_a_damaged_result_that_cannot_be_deleted_releases_the_lock_it_took(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(caching, "_lock_folder", lambda: tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(caching, "_result_folder", lambda: results)
    (results / "key").write_bytes(b"{damaged")
    lock_file = tmp_path / "key.lock"
    opened: list[int] = []
    real_open = os.open

    def recording_open(path: Any, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, *args, **kwargs)
        if Path(path) == lock_file:
            opened.append(fd)
        return fd

    def refuse_unlink(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    locks = CacheLockManager()
    with monkeypatch.context() as patched:
        patched.setattr(caching.os, "open", recording_open)
        patched.setattr(Path, "unlink", refuse_unlink)
        with pytest.raises(PermissionError):
            locks.acquire_lock("key", "me", acquire_timeout=1)
    assert opened
    # The lock is free for this process and others, and its descriptor was closed.
    assert not locks.is_lock_holder("key", "me")
    assert not locks.is_locked("key")
    for fd in opened:
        try:
            still = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:
            continue
        assert still != lock_file
