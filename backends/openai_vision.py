"""The vision backend for OpenAI-compatible chat servers with vision models (vLLM, LM Studio, ...).

Each picture is first screened by ``HeuristicVision`` (milliseconds, no model):
one it rejects (blank, clipped, busy text zone) is reported as is and never sent.
A picture that passes is resized to the profile's pixel budget in whole 28-pixel
patches (``vision_images``), attached to a chat completion as a base64 PNG data
URI in an ``image_url`` content part, and asked the fixed questions of
``vision_verdict``; the answer is extracted, validated and re-asked through
``structured_output.ask_structured``.

The HTTP side is the text backend's (``OpenAITextBackend``): the same httpx client
setup, streaming with a silence deadline (``timeout_s`` is the longest wait for a
token; ``backends.chat_exchange``), the structured-output probe of
``backends.server_structured`` remembered per server and model (a schema the server
honours goes with each request; against one that ignores or refuses schemas the
answer is extracted and re-asked as before), fault mapping and key scrubbing
(``backends.chat_faults``). ``_VisionChat`` reuses it by inheritance and changes
three things: user messages may carry a picture, at most ``max_in_flight`` requests
are out at once (a vision server's memory bounds its batch; below that bound nothing
waits), and an overflowing context names the picture budget.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr

from backends.base import CheckRequest, Health
from backends.heuristic_vision import HeuristicVision
from backends.openai_text import ATTEMPTS, OpenAITextBackend
from backends.source_revision import module_revision
from backends.structured_output import ask_structured, one_line
from backends.vision_images import VISION_PROFILES, VisionProfile, data_uri, prepare_image
from backends.vision_verdict import VisionVerdict, to_report, verdict_messages
from backends.work_log import WorkLog
from hyperlocal.errors import ConfigurationError, HyperlocalError, TextOverflow
from hyperlocal.models import BackendIdentity, QCReport
from hyperlocal.prompts.llm_tokens import ChatMessage
from hyperlocal.settings import VisionSettings

#: Greedy answers: the same picture should get the same verdict (and cache key) every time.
DEFAULT_TEMPERATURE = 0.0
#: Enough for the verdict's JSON and a short reason, with room for a little preamble.
DEFAULT_MAX_TOKENS = 300
DEFAULT_MAX_IN_FLIGHT = 4
DEFAULT_PROFILE = "balanced"


class ImageMessage(ChatMessage):
    """A chat message with one picture attached, sent as OpenAI content parts."""

    image_url: str = Field(repr=False, description="The picture as a data URI.")

    def wire(self) -> dict[str, Any]:
        """Return the message as sent: the picture part first, then the question."""
        # Picture before text is the order Qwen-VL and LLaVA chat templates are trained on.
        return {
            "role": self.role,
            "content": [
                {"type": "image_url", "image_url": {"url": self.image_url}},
                {"type": "text", "text": self.content},
            ],
        }


class _VisionChat(OpenAITextBackend):
    """The text backend's HTTP client, with pictures in messages and a bound on requests."""

    _settings_prefix: ClassVar[str] = "HYPERLOCAL_VISION__"

    def __init__(self, base_url: str, *, max_in_flight: int, **options: Any) -> None:
        super().__init__(base_url, **options)
        self.max_in_flight = max_in_flight
        self._in_flight = threading.BoundedSemaphore(max_in_flight)

    def _payload(
        self, messages: list[ChatMessage], max_tokens: int | None = None
    ) -> dict[str, Any]:
        payload = super()._payload(messages, max_tokens)
        payload["messages"] = [
            m.wire() if isinstance(m, ImageMessage) else m.model_dump() for m in messages
        ]
        return payload

    def _slot(self) -> AbstractContextManager[object]:
        # Every request, chat, probe or /models, takes a slot: the bound is on the server's load.
        return self._in_flight

    def _overflow_message(self, message: str) -> str:
        return (
            "the conversation outgrew the server's context window: pick a smaller "
            "HYPERLOCAL_VISION__PROFILE (fewer picture tokens) or give the server a larger "
            f"context ({one_line(message, 120)})"
        )


def _for_vision(text: str) -> str:
    """Return a text backend message with its setting names turned into the vision ones."""
    return text.replace("HYPERLOCAL_TEXT__", "HYPERLOCAL_VISION__")


@contextmanager
def _vision_faults() -> Iterator[None]:
    """Re-raise the shared HTTP layer's faults naming the vision settings, same fault class."""
    try:
        yield
    except TextOverflow:
        raise  # never raised here; its constructor takes more than a message
    except HyperlocalError as exc:
        message = str(exc)
        fixed = _for_vision(message)
        if fixed == message:
            raise
        raise type(exc)(fixed) from exc.__cause__


class OpenAIVisionBackend:
    """Checks pictures with a vision model on an OpenAI-compatible chat server.

    One client serves every thread; up to ``max_in_flight`` checks talk to the
    server at once (a batching server answers them together), more wait their turn.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: SecretStr | str | None = None,
        profile: str = DEFAULT_PROFILE,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        temperature: float = DEFAULT_TEMPERATURE,
        seed: int | None = 7,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout_s: float = 120.0,
        attempts: int = ATTEMPTS,
        heuristic: HeuristicVision | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Prepare a client for ``base_url``; no request is made until one is needed.

        Raises ``ConfigurationError`` for an unknown profile or ``max_in_flight`` under 1.
        """
        if profile not in VISION_PROFILES:
            raise ConfigurationError(
                f"unknown vision profile {profile!r}: set HYPERLOCAL_VISION__PROFILE to one of "
                f"{', '.join(VISION_PROFILES)}"
            )
        if max_in_flight < 1:
            raise ConfigurationError(
                f"HYPERLOCAL_VISION__MAX_IN_FLIGHT must be at least 1, not {max_in_flight}"
            )
        self.profile: VisionProfile = VISION_PROFILES[profile]
        self.attempts = attempts
        self._heuristic = heuristic or HeuristicVision()
        self._chat = _VisionChat(
            base_url,
            max_in_flight=max_in_flight,
            model=model,
            api_key=api_key,
            temperature=temperature,
            seed=seed,
            max_tokens=max_tokens,
            timeout_s=timeout_s,
            attempts=attempts,
            transport=transport,
        )

    @classmethod
    def from_settings(
        cls,
        vision: VisionSettings,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        profile: str = DEFAULT_PROFILE,
    ) -> OpenAIVisionBackend:
        """Build the backend from ``settings.vision``.

        Raises ``ConfigurationError`` without a base URL, or for a bad profile or bound.
        """
        if not vision.base_url:
            raise ConfigurationError(
                "the openai vision kind needs a server: set HYPERLOCAL_VISION__BASE_URL "
                "(an OpenAI-compatible URL, usually ending in /v1)"
            )
        return cls(
            vision.base_url,
            model=vision.model,
            api_key=vision.api_key,
            profile=profile,
            max_in_flight=max_in_flight,
            max_tokens=vision.max_tokens,
            timeout_s=vision.timeout_s,
        )

    def __repr__(self) -> str:
        return (
            f"OpenAIVisionBackend(url={self._chat._public_url!r}, model={self._chat._model!r}, "
            f"profile={self.profile.name!r})"
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._chat.close()

    @property
    def max_in_flight(self) -> int:
        """The most requests this backend has at the server at once."""
        return self._chat.max_in_flight

    @property
    def model(self) -> str:
        """The model asked: the configured one, else the server's first offered model.

        Raises a passing fault when the server must be asked and cannot be reached,
        ``ConfigurationError`` when it offers no model.
        """
        with _vision_faults():
            return self._chat.model

    @property
    def identity(self) -> BackendIdentity:
        """Kind, model, the questions' revision and the picture budget; never the URL or key.

        Raises like ``model`` when the model has to be asked of the server.
        """
        return BackendIdentity(
            role="vision",
            kind="openai",
            model=self.model,
            # The questions are the prompt: editing them changes verdicts, so they version it.
            revision=module_revision("backends.vision_verdict"),
            params={
                "profile": self.profile.name,
                "max_pixels": self.profile.max_pixels,
                "min_pixels": self.profile.min_pixels,
                "temperature": self._chat.temperature,
                "seed": self._chat.seed,
                "max_tokens": self._chat.max_tokens,
                # The screen decides which pictures reach the model at all.
                "heuristic": self._heuristic.identity.revision,
            },
        )

    def health(self) -> Health:
        """Say whether the server answers, what it offers and how fast; never raises.

        Structured-output support is probed with a tiny text request (once per process).
        """
        health = self._chat.health()
        detail = _for_vision(health.detail)
        if health.ok:
            detail += (
                f"; profile {self.profile.name} (at most {self.profile.max_pixels} pixels, "
                f"{self.max_in_flight} in flight)"
            )
        return health.model_copy(update={"role": "vision", "detail": detail})

    def check(self, request: CheckRequest, log: WorkLog | None = None) -> QCReport:
        """Return the verdict on one picture: the heuristic screen's report if it fails, else
        the model's answers to the fixed questions after the screen's checks.

        The model's requests, the structured-output probe and the writer go into ``log``
        (nothing when the screen decides alone). Raises ``PassingFault`` (server down,
        silent or busy), ``InvalidModelOutput`` after ``attempts`` answers or when the
        conversation outgrows the context window, ``InvalidImage`` for bytes that do not
        decode, or ``ConfigurationError`` (refused key, unknown model, wrong URL).
        """
        screening = self._heuristic.check(request)
        if not screening.passed:
            # The screen is certain about what it rejects; a model call would only cost time.
            return screening
        prepared = prepare_image(
            request.image.png,
            max_pixels=self.profile.max_pixels,
            min_pixels=self.profile.min_pixels,
        )
        *before, question = verdict_messages(request.subject, request.text_zone.describe())
        messages: list[ChatMessage] = [
            *before,
            ImageMessage(
                role=question.role, content=question.content, image_url=data_uri(prepared)
            ),
        ]

        def ask(conversation: list[ChatMessage]) -> str:
            return self._chat._chat(conversation, VisionVerdict, log)

        with _vision_faults():
            identity = self.identity
            self._chat.structured_output_probe(log)
            if log is not None:
                log.writer(identity.label)
            verdict = ask_structured(ask, messages, VisionVerdict, attempts=self.attempts, log=log)
        return to_report(verdict, identity, request.min_score, screening.checks)
