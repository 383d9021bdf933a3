"""The text backend for OpenAI-compatible chat servers (vLLM, mlx_lm, Ollama, LM Studio, OpenAI).

Speaks ``POST {base_url}/chat/completions`` and ``GET {base_url}/models`` with
httpx rather than the official ``openai`` client: httpx is already a
dependency, and calling it directly gives exact control of timeouts, of how
each HTTP status maps onto the fault tree, and of ``response_format`` probing
(local servers differ in how they refuse it), with no extra package.

``OpenAITextBackend`` keeps the backend's side: identity, the models the server
offers, health, the structured-output probe and what it decides, and the two
jobs (``write_copy``, ``direct_art``). The HTTP exchange of one chat completion,
streamed with a silence deadline and a budget from the measured token rate, is
``backends.chat_exchange``'s; what a server's answers mean as faults,
``backends.chat_faults``'.

Structured output (``backends.server_structured``): before the first request to a
(server, model) the backend probes which schema dialect the server really honours,
by checking a tiny constrained answer, and remembers it for the process. With one,
the prompt leaves the schema out (``PromptBudget.schema_in_prompt=False``) and the
request carries it; with none, the prompt carries the format instructions. Either
way the answer is extracted, validated and re-asked (``backends.structured_output``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, SecretStr

from backends.base import ArtRequest, CopyRequest, Health
from backends.chat_answers import ChatAnswer, ChatRefusal, TextStats
from backends.chat_exchange import CHAT_PATH, TOKEN_RATES, ChatExchange, TokenRates
from backends.chat_faults import (
    chat_fault,
    error_fault,
    overflow_message,
    refuses_format,
    scrub,
    server_message,
    unknown_model_error,
)
from backends.chat_prompts import PromptBudget, request_art, request_copy
from backends.server_structured import (
    PROBE_MAX_TOKENS,
    PROBE_PROMPT,
    PROBES,
    ProbeMemory,
    ProbeReply,
    ProbeResult,
    dialects_for,
    probe,
    response_format,
    with_schema_instructions,
)
from backends.structured_output import extract_json, one_line
from backends.work_log import WorkLog
from hyperlocal.errors import (
    BackendBusy,
    ConfigurationError,
    HyperlocalError,
    InvalidModelOutput,
)
from hyperlocal.models import BackendIdentity, FlyerCopy, ImagePrompt
from hyperlocal.prompts.llm_tokens import (
    ChatMessage,
    TextTokenCounter,
    default_counter,
)
from hyperlocal.settings import TextSettings

DEFAULT_TEMPERATURE = 0.7
#: Answers asked per call before giving up with ``InvalidModelOutput``.
ATTEMPTS = 3
#: Connecting never needs long: a refused or unroutable server should fail fast.
CONNECT_TIMEOUT_S = 10.0


def _public_url(url: str) -> str:
    """Return ``url`` without user and password, safe for messages and logs."""
    parsed = httpx.URL(url)
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    return str(parsed).rstrip("/")


class OpenAITextBackend:
    """Copy and art direction from an OpenAI-compatible chat server.

    One ``httpx.Client`` serves every thread: requests from concurrent variants
    go out together (a batching server sees them at once); only the small
    caches and counters take a lock.
    """

    # What each (public base URL, model) does with schemas: shared by every backend of
    # the process (``backends.server_structured.PROBES``), text and vision.
    _format_support: ClassVar[ProbeMemory] = PROBES
    # Decode speed per (public base URL, model), tokens per second: shared the same way
    # (``backends.chat_exchange.TOKEN_RATES``).
    _rates: ClassVar[TokenRates] = TOKEN_RATES
    #: The setting that names this backend's server kind in messages.
    _settings_prefix: ClassVar[str] = "HYPERLOCAL_TEXT__"

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: SecretStr | str | None = None,
        provider: str | None = None,
        temperature: float | None = None,
        seed: int | None = 7,
        max_tokens: int = 800,
        context_window: int = 8192,
        timeout_s: float = 120.0,
        counter: TextTokenCounter | None = None,
        attempts: int = ATTEMPTS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Prepare a client for ``base_url``; no request is made until one is needed.

        ``provider`` is the server preset (``TextSettings.provider``): it orders the
        schema dialects the probe tries. ``timeout_s`` is the longest wait for a token.
        """
        self._base_url = base_url.rstrip("/")
        self._public_url = _public_url(self._base_url)
        self._model = model
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        # Kept only to scrub it from server messages that might echo it back.
        self._secret = key or None
        self.provider = provider
        self.temperature = DEFAULT_TEMPERATURE if temperature is None else temperature
        self.seed = seed
        self.max_tokens = max_tokens
        self.context_window = context_window
        self.timeout_s = timeout_s
        self.attempts = attempts
        self._counter = counter
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        client = httpx.Client(
            # httpx turns a URL's user:password into Basic auth, which would replace the
            # Bearer header: with a key set, the key wins and the URL goes without them.
            base_url=self._public_url if key else self._base_url,
            headers=headers,
            # Each read waits at most timeout_s: the silence deadline, also before headers.
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
            transport=transport,
        )
        self._http = ChatExchange(
            client,
            self._public_url,
            timeout_s=timeout_s,
            max_tokens=max_tokens,
            settings_prefix=self._settings_prefix,
            counter=self._token_counter,
            secret=self._secret,
            slot=self._slot,
            rates=self._rates,
        )
        self._lock = threading.Lock()
        self._offered: list[str] | None = None

    @classmethod
    def from_settings(cls, text: TextSettings) -> OpenAITextBackend:
        """Build the backend from ``settings.text``; raises ``ConfigurationError`` with no URL."""
        base_url = text.effective_base_url()
        if not base_url:
            raise ConfigurationError(
                "the openai text kind needs a server: set HYPERLOCAL_TEXT__BASE_URL "
                "or HYPERLOCAL_TEXT__PROVIDER"
            )
        return cls(
            base_url,
            model=text.model,
            api_key=text.api_key,
            provider=text.provider,
            temperature=text.temperature,
            seed=text.seed,
            max_tokens=text.max_tokens,
            context_window=text.context_window,
            timeout_s=text.timeout_s,
        )

    def __repr__(self) -> str:
        return f"OpenAITextBackend(url={self._public_url!r}, model={self._model!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    # -- identity and models --------------------------------------------------------------

    @property
    def model(self) -> str:
        """The model asked: the configured one, else the server's first offered model.

        Raises a passing fault when the server must be asked and cannot be reached,
        ``ConfigurationError`` when it offers no model.
        """
        if self._model is None:
            offered = self.offered_models()
            with self._lock:
                if self._model is None:
                    if not offered:
                        raise ConfigurationError(
                            f"the server at {self._public_url} offers no model: "
                            f"set {self._settings_prefix}MODEL"
                        )
                    self._model = offered[0]
        return self._model

    @property
    def identity(self) -> BackendIdentity:
        """Kind, model and sampling parameters; never the URL or the key.

        Raises like ``model`` when the model has to be asked of the server.
        """
        return BackendIdentity(
            role="text",
            kind="openai",
            model=self.model,
            params={
                "temperature": self.temperature,
                "seed": self.seed,
                "max_tokens": self.max_tokens,
            },
        )

    def offered_models(self, refresh: bool = False) -> list[str]:
        """Return the model ids ``GET /models`` lists (cached); raises the request's faults."""
        with self._lock:
            if self._offered is not None and not refresh:
                return list(self._offered)
        response = self._http.send("GET", "/models")
        if response.status_code != 200:
            message = server_message(response.status_code, response.content, self._secret)
            raise self._fault(response.status_code, message, "/models")
        try:
            data = response.json().get("data", [])
            offered = [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]
        except (ValueError, AttributeError, TypeError):
            offered = []
        with self._lock:
            self._offered = offered
        return list(offered)

    def stats(self) -> TextStats:
        """Return totals of the chat requests made so far (estimated tokens where no usage)."""
        return self._http.tally.stats()

    def structured_output(self) -> str:
        """Return how answers are held to their schema here, or ``not probed``."""
        if self._model is None:
            return "not probed"
        result = self._format_support.get(self._key())
        return "not probed" if result is None else result.label

    def structured_output_probe(self, log: WorkLog | None = None) -> ProbeResult:
        """Return what this server does with schemas, probing it once per process.

        Raises a passing fault when the server cannot be reached (nothing remembered),
        ``ConfigurationError`` when it refuses the key or the model.
        """
        self.model  # noqa: B018 - the key needs the model: ask the server for it first
        result, _ran = self._format_support.result(
            self._key(),
            lambda: probe(lambda field: self._probe_send(field, log), dialects_for(self.provider)),
        )
        if log is not None:
            log.structured_output(result.label)
            log.note(result.note())
        return result

    def _key(self) -> tuple[str, str]:
        """The (public URL, model) what is learned about a server is kept under."""
        return (self._public_url, self._model or "")

    # -- the two jobs ---------------------------------------------------------------------

    def write_copy(self, request: CopyRequest, log: WorkLog | None = None) -> FlyerCopy:
        """Return valid copy for one variant that keeps every fact of the brief.

        Every request, the probe's result and the writer go into ``log``. Raises
        ``PassingFault`` (server down, silent or busy), ``InvalidModelOutput`` after
        ``attempts`` answers or when the conversation outgrows the context window,
        or ``ConfigurationError``.
        """
        probed = self._start(log)
        return request_copy(self._asker(log), request, self._budget(probed), log)

    def direct_art(self, request: ArtRequest, log: WorkLog | None = None) -> ImagePrompt:
        """Return the phrases of a picture with no lettering; raises like ``write_copy``."""
        probed = self._start(log)
        return request_art(self._asker(log), request, self._budget(probed), log)

    def _start(self, log: WorkLog | None) -> ProbeResult:
        probed = self.structured_output_probe(log)
        if log is not None:
            log.writer(self.identity.label)
        return probed

    def _budget(self, probed: ProbeResult) -> PromptBudget:
        return PromptBudget(
            counter=self._token_counter(),
            context_window=self.context_window,
            max_output=self.max_tokens,
            attempts=self.attempts,
            schema_in_prompt=not probed.constrained,
        )

    def _asker(self, log: WorkLog | None) -> Callable[[list[ChatMessage], type[BaseModel]], str]:
        def ask(messages: list[ChatMessage], answer_type: type[BaseModel]) -> str:
            return self._chat(messages, answer_type, log)

        return ask

    def health(self) -> Health:
        """Say whether the server answers, what it offers and how fast; never raises."""
        try:
            return self._health()
        except Exception as exc:  # a health check reports, it never takes the caller down
            detail = f"{self._public_url}: unexpected {type(exc).__name__}: {exc}"
            return Health(role="text", kind="openai", ok=False, detail=scrub(detail, self._secret))

    def _health(self) -> Health:
        models: list[str] = []
        try:
            models = self.offered_models(refresh=True)
            model = self.model
        except HyperlocalError as exc:
            return Health(role="text", kind="openai", ok=False, detail=str(exc), models=models)
        offered = "offered" if model in models else "not listed by /models"
        where = f"{self._public_url}: model {model!r} {offered}"
        try:
            latency = self._one_token_answer()
            probed = self.structured_output_probe()
        except HyperlocalError as exc:
            return Health(
                role="text", kind="openai", ok=False, detail=f"{where}; {exc}", models=models
            )
        return Health(
            role="text",
            kind="openai",
            ok=True,
            detail=(
                f"{where}; structured output {probed.label} (probe: {probed.summary()}); "
                f"one-token answer in {latency:.2f} s"
            ),
            models=models,
            latency_s=latency,
        )

    def _one_token_answer(self) -> float:
        """Ask for one token with no schema; return the seconds it took."""
        messages = [ChatMessage(role="user", content="Say OK.")]
        started = time.monotonic()
        outcome = self._http.chat(self._payload(messages, max_tokens=1), messages, None)
        if isinstance(outcome, ChatRefusal):
            raise self._fault(outcome.status, outcome.message, CHAT_PATH)
        if outcome.error is not None:
            raise self._error_fault(outcome.error)
        return time.monotonic() - started

    # -- chat -----------------------------------------------------------------------------

    def _chat(
        self, messages: list[ChatMessage], answer_type: type[BaseModel], log: WorkLog | None
    ) -> str:
        """Return the text of one chat completion, held to ``answer_type`` where the server can.

        A server whose probed dialect refuses this (full) schema is remembered as prompt
        only, and the request goes again with the format instructions in the prompt.
        """
        probed = self.structured_output_probe()
        payload = self._payload(messages)
        if probed.dialect is None:
            return self._text(self._http.chat(payload, messages, log))
        schema = answer_type.model_json_schema()
        constrained = {
            **payload,
            "response_format": response_format(probed.dialect, answer_type.__name__, schema),
        }
        outcome = self._http.chat(constrained, messages, log)
        if isinstance(outcome, ChatRefusal) and refuses_format(outcome.status, outcome.message):
            fallen = probed.refused_later(f"HTTP {outcome.status}: {outcome.message}")
            self._format_support.remember(self._key(), fallen)
            if log is not None:
                log.structured_output(fallen.label)
                log.note(fallen.note())
            plain = with_schema_instructions(messages, schema)
            return self._text(self._http.chat(self._payload(plain), plain, log))
        return self._text(outcome)

    def _probe_send(self, format_field: dict[str, Any], log: WorkLog | None) -> ProbeReply:
        """Send the probe question with ``format_field``; return what the server did with it."""
        messages = [ChatMessage(role="user", content=PROBE_PROMPT)]
        payload = {
            **self._payload(messages, max_tokens=PROBE_MAX_TOKENS),
            "temperature": 0.0,
            "response_format": format_field,
        }
        outcome = self._http.chat(payload, messages, log, progress=False)
        if isinstance(outcome, ChatRefusal):
            if refuses_format(outcome.status, outcome.message):
                return ProbeReply(refused=f"HTTP {outcome.status}: {one_line(outcome.message, 80)}")
            raise self._fault(outcome.status, outcome.message, CHAT_PATH)
        if outcome.error is not None:
            fault = self._error_fault(outcome.error)
            if isinstance(fault, BackendBusy):
                raise fault
            return ProbeReply(refused=f"error: {one_line(outcome.error, 80)}")
        return ProbeReply(text=outcome.text)

    def _text(self, outcome: ChatAnswer | ChatRefusal) -> str:
        """Return an answer's text; raise the fault of a refusal or an unusable answer."""
        if isinstance(outcome, ChatRefusal):
            raise self._fault(outcome.status, outcome.message, CHAT_PATH)
        if outcome.error is not None:
            raise self._error_fault(outcome.error)
        if not outcome.text.strip():
            raise InvalidModelOutput("the model returned an empty answer")
        if outcome.finish == "length":
            try:
                extract_json(outcome.text)
            except InvalidModelOutput:
                raise InvalidModelOutput(
                    f"the answer was cut off at {self.max_tokens} tokens before its JSON ended: "
                    f"raise {self._settings_prefix}MAX_TOKENS"
                ) from None
        return outcome.text

    # -- requests -------------------------------------------------------------------------

    def _token_counter(self) -> TextTokenCounter:
        if self._counter is None:
            self._counter = default_counter()
        return self._counter

    def _payload(
        self, messages: list[ChatMessage], max_tokens: int | None = None
    ) -> dict[str, Any]:
        model = self.model  # before _key(): it may have to be asked of the server
        payload: dict[str, Any] = {
            "model": model,
            "messages": [m.model_dump() for m in messages],
            "temperature": self.temperature,
            "max_tokens": max_tokens or self.max_tokens,
            "stream": True,
        }
        if self._http.takes_stream_options(model):
            payload["stream_options"] = {"include_usage": True}
        if self.seed is not None:
            payload["seed"] = self.seed
        return payload

    def _slot(self) -> AbstractContextManager[object]:
        """Held around every request (a subclass bounds requests in flight)."""
        return nullcontext()

    # -- faults ---------------------------------------------------------------------------

    def _fault(self, status: int, message: str, path: str) -> HyperlocalError:
        """Return the fault for a non-200 answer (the caller raises it)."""
        return chat_fault(
            status,
            message,
            f"{self._public_url}{path}",
            chat=path.endswith(CHAT_PATH),
            settings_prefix=self._settings_prefix,
            overflow=self._overflow_message,
            unknown_model=self._unknown_model_error,
        )

    def _error_fault(self, error: str) -> HyperlocalError:
        """Return the fault of an error object in a 200 answer (busy if it sounds passing)."""
        return error_fault(error, self._public_url, self._secret)

    def _overflow_message(self, message: str) -> str:
        """One line: the conversation outgrew the context window (the vision one differs)."""
        return overflow_message(message, self.context_window)

    def _unknown_model_error(self, message: str) -> ConfigurationError | None:
        try:
            offered: list[str] | None = self.offered_models(refresh=True)
        except HyperlocalError:
            offered = None
        return unknown_model_error(
            self._model or "", self._public_url, message, offered, self._settings_prefix
        )
