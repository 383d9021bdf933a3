"""A failed run ends at once: the model work still in flight is stopped, not waited for."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import registry
from backends.base import CopyRequest
from backends.builtin_text import BuiltinCopywriter
from backends.work_log import WorkLog
from flows.flyer import flyer
from hyperlocal.briefs.loading import load_brief
from hyperlocal.errors import InvalidModelOutput, StepCancelled
from hyperlocal.models import Brief, FlyerCopy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BRIEF_FILE = PROJECT_ROOT / "examples" / "briefs" / "bakery.toml"
#: How long the slow variant would write if nobody stopped it.
SLOW_WRITING_S = 120.0

pytestmark = pytest.mark.slow


class _OneFailsOneWrites(BuiltinCopywriter):
    """Variant 1 fails once variant 2 is writing; variant 2 writes until it is stopped."""

    writing = threading.Event()
    stopped = threading.Event()
    finished = threading.Event()

    def write_copy(self, request: CopyRequest, log: WorkLog | None = None) -> FlyerCopy:
        assert log is not None
        if request.variant == 1:
            type(self).writing.wait(SLOW_WRITING_S)
            raise InvalidModelOutput("the model answered prose, not JSON")
        type(self).writing.set()
        tokens = 0
        deadline = threading.Event()
        while not deadline.wait(0.05):
            tokens += 1
            try:
                log.tokens(tokens)
            except StepCancelled:
                type(self).stopped.set()
                raise
            if tokens * 0.05 > SLOW_WRITING_S:
                break
        type(self).finished.set()
        return super().write_copy(request, log)


@pytest.fixture
def one_fails_one_writes() -> Iterator[type[_OneFailsOneWrites]]:
    saved = dict(registry._BUILDERS)
    backend = type("OneFailsOneWrites", (_OneFailsOneWrites,), {})
    backend.writing, backend.stopped, backend.finished = (threading.Event() for _ in range(3))
    registry.register("text", "builtin", lambda settings: backend())
    yield backend
    registry._BUILDERS.clear()
    registry._BUILDERS.update(saved)
    registry.clear()


def test_a_failed_variant_stops_the_generation_of_the_others(
    prefect_env: str, isolated_env: Path, one_fails_one_writes: type[_OneFailsOneWrites]
) -> None:
    brief: Brief = load_brief(BRIEF_FILE, allowed_dirs=[PROJECT_ROOT / "examples"])
    with pytest.raises(InvalidModelOutput, match="prose, not JSON"):
        flyer(brief=brief, variants=2, formats=["square"], assets_from=str(BRIEF_FILE.parent))
    # The run's own fault is what the user sees; the other variant was stopped mid-answer
    # (between two tokens), not left to write for minutes behind a failed run.
    assert one_fails_one_writes.stopped.is_set()
    assert not one_fails_one_writes.finished.is_set()
    assert not (isolated_env / "output" / "flyer_runs").exists()
