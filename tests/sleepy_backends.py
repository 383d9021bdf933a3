"""Backends of fixed, known latency, for benchmarks of the flow's orchestration (test-only).

Each sleeps a set time per call, then delegates to the builtin backend of its
role (``BuiltinCopywriter``, ``BuiltinPainter``, ``HeuristicVision``), so its
outputs are as valid as theirs. Their identity has kind ``sleepy`` and carries
the latency, so cache keys differ from the builtin ones and from other latencies.

Concurrency assumption: the sleepy painter lets any number of pictures sleep at
once (as several devices or a batching server would); a real in-process image
model paints one picture per device at a time. ``bench.orchestration`` takes its
critical-path bound under this assumption and reports the one-device bound apart.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from backends import registry
from backends.base import ArtRequest, CheckRequest, CopyRequest, Health, ImageRequest
from backends.builtin_image import BuiltinPainter
from backends.builtin_text import BuiltinCopywriter
from backends.heuristic_vision import HeuristicVision
from backends.work_log import WorkLog
from hyperlocal.models import (
    BackendIdentity,
    FlyerCopy,
    GeneratedImage,
    ImagePrompt,
    PromptSyntax,
    QCReport,
)
from hyperlocal.prompts.clip_tokens import TokenCounter

KIND = "sleepy"


@dataclass(frozen=True)
class Latencies:
    """Seconds each model call sleeps before its builtin delegate does the work."""

    copy: float = 0.3
    art: float = 0.2
    image: float = 0.5
    check: float = 0.2


def _sleepy_identity(inner: BackendIdentity, latency: dict[str, float]) -> BackendIdentity:
    # The latency is part of the identity: a run at other latencies must not hit this cache.
    params: dict[str, str | int | float | bool | None] = dict(inner.params)
    params.update({f"sleep_{name}_s": seconds for name, seconds in latency.items()})
    return BackendIdentity(
        role=inner.role,
        kind=KIND,
        model=f"{inner.model}+sleep",
        revision=inner.revision,
        params=params,
    )


def _health(role: str, inner: Health, latency: dict[str, float]) -> Health:
    slept = ", ".join(f"{name} {seconds:g} s" for name, seconds in latency.items())
    return inner.model_copy(
        update={"kind": KIND, "role": role, "detail": f"sleeps {slept}; {inner.detail}"}
    )


class SleepyText:
    """The builtin copywriter after a fixed sleep per call."""

    def __init__(self, latencies: Latencies = Latencies()) -> None:
        """Wrap a ``BuiltinCopywriter``; ``latencies.copy`` and ``.art`` are slept per call."""
        self._inner = BuiltinCopywriter()
        self.latencies = latencies
        self._latency = {"copy": latencies.copy, "art": latencies.art}
        self._identity = _sleepy_identity(self._inner.identity, self._latency)

    @property
    def identity(self) -> BackendIdentity:
        """The builtin copywriter's identity, with kind ``sleepy`` and the latencies."""
        return self._identity

    def health(self) -> Health:
        """Always healthy, like the builtin copywriter."""
        return _health("text", self._inner.health(), self._latency)

    def write_copy(self, request: CopyRequest, log: WorkLog | None = None) -> FlyerCopy:
        """Sleep ``latencies.copy`` seconds, then write the builtin copy."""
        time.sleep(self.latencies.copy)
        return self._inner.write_copy(request)

    def direct_art(self, request: ArtRequest, log: WorkLog | None = None) -> ImagePrompt:
        """Sleep ``latencies.art`` seconds, then art-direct as the builtin does."""
        time.sleep(self.latencies.art)
        return self._inner.direct_art(request)


class SleepyImage:
    """The builtin painter after a fixed sleep per picture; pictures may sleep concurrently."""

    def __init__(self, latencies: Latencies = Latencies()) -> None:
        """Wrap a ``BuiltinPainter``; ``latencies.image`` is slept per picture."""
        self._inner = BuiltinPainter()
        self.latencies = latencies
        self._latency = {"image": latencies.image}
        self._identity = _sleepy_identity(self._inner.identity, self._latency)

    @property
    def identity(self) -> BackendIdentity:
        """The builtin painter's identity, with kind ``sleepy`` and the latency."""
        return self._identity

    def health(self) -> Health:
        """Always healthy, like the builtin painter."""
        return _health("image", self._inner.health(), self._latency)

    @property
    def prompt_syntax(self) -> PromptSyntax:
        """The builtin painter's prompt syntax (one plain prompt)."""
        return self._inner.prompt_syntax

    def token_counters(self) -> list[TokenCounter]:
        """The builtin painter's tokenizers (the real CLIP BPE)."""
        return self._inner.token_counters()

    def generate(self, request: ImageRequest) -> GeneratedImage:
        """Sleep ``latencies.image`` seconds, then paint the builtin picture."""
        time.sleep(self.latencies.image)
        image = self._inner.generate(request)
        # The picture names what produced it: this backend, not the delegate.
        return image.model_copy(update={"backend": self._identity})


class SleepyVision:
    """The heuristic checks after a fixed sleep per picture."""

    def __init__(self, latencies: Latencies = Latencies()) -> None:
        """Wrap a ``HeuristicVision``; ``latencies.check`` is slept per check."""
        self._inner = HeuristicVision()
        self.latencies = latencies
        self._latency = {"check": latencies.check}
        self._identity = _sleepy_identity(self._inner.identity, self._latency)

    @property
    def identity(self) -> BackendIdentity:
        """The heuristic checker's identity, with kind ``sleepy`` and the latency."""
        return self._identity

    def health(self) -> Health:
        """Always healthy, like the heuristic checker."""
        return _health("vision", self._inner.health(), self._latency)

    def check(self, request: CheckRequest, log: WorkLog | None = None) -> QCReport:
        """Sleep ``latencies.check`` seconds, then check with pixel statistics."""
        time.sleep(self.latencies.check)
        return self._inner.check(request)


#: The offline kinds' own builders while ``install`` has replaced them.
_ORIGINALS: dict[registry.Role, registry.Builder] = {}
#: The kinds that need no model, per role: what ``install(replace_offline=True)`` stands in for.
OFFLINE_KINDS: dict[registry.Role, str] = {
    "text": "builtin",
    "image": "builtin",
    "vision": "heuristic",
}


def install(latencies: Latencies = Latencies(), replace_offline: bool = True) -> None:
    """Register the sleepy backends as kind ``sleepy`` of every role.

    With ``replace_offline`` they also serve the offline kinds (text and image
    ``builtin``, vision ``heuristic``): ``Settings`` only accepts the kinds it
    lists, so that is how a run in this process selects them. Their identity
    still says ``sleepy``, so nothing cached by the real builtin backends is reused.
    Call ``restore()`` to put the builtin ones back.
    """
    builders: dict[registry.Role, registry.Builder] = {
        "text": lambda settings: SleepyText(latencies),
        "image": lambda settings: SleepyImage(latencies),
        "vision": lambda settings: SleepyVision(latencies),
    }
    for role, builder in builders.items():
        registry.register(role, KIND, builder)
        if replace_offline:
            _ORIGINALS.setdefault(role, registry._BUILDERS[(role, OFFLINE_KINDS[role])])
            registry.register(role, OFFLINE_KINDS[role], builder)


def restore() -> None:
    """Give the offline kinds their own builders back (after ``install``)."""
    for role, builder in list(_ORIGINALS.items()):
        registry.register(role, OFFLINE_KINDS[role], builder)
        del _ORIGINALS[role]


def latencies_dict(latencies: Latencies) -> dict[str, float]:
    """Return the latencies by call name, for reports."""
    return asdict(latencies)
