"""The text backend for OpenAI-compatible chat servers (vLLM, mlx_lm, Ollama, LM Studio, OpenAI).

Speaks ``POST {base_url}/chat/completions`` and ``GET {base_url}/models`` with
httpx rather than the official ``openai`` client: httpx is already a
dependency, and calling it directly gives exact control of timeouts, of how
each HTTP status maps onto the fault tree, and of ``response_format`` probing
(local servers differ in how they refuse it), with no extra package.

Structured output (``backends.server_structured``): before the first request to a
(server, model) the backend probes which schema dialect the server really honours,
by checking a tiny constrained answer, and remembers it for the process. With one,
the prompt leaves the schema out (``PromptBudget.schema_in_prompt=False``) and the
request carries it; with none, the prompt carries the format instructions. Either
way the answer is extracted, validated and re-asked (``backends.structured_output``).

Streaming: every chat request asks for server-sent events (``stream: true``, usage
in the last event where the server supports ``stream_options``). ``timeout_s`` is
the longest silence: no token for that long (the first token's wait includes
reading the prompt) and a ``SilenceWatchdog`` shuts the connection, which also tells
the server to stop generating. The whole answer has a budget too::

    budget_s = timeout_s + BUDGET_SLACK * max_tokens / rate

where ``rate`` is this server and model's decode speed in tokens per second, an
exponential average over earlier answers, or for the first answer its own speed
once ``RATE_AFTER_TOKENS`` tokens have arrived (until then only the silence
deadline applies). An answer that keeps to half the measured speed, after a
prompt read within ``timeout_s``, always fits. Servers that answer a plain JSON
body to a stream request are read the old way: the body is their one "token".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, SecretStr

from backends.base import ArtRequest, CopyRequest, Health
from backends.chat_prompts import PromptBudget, request_art, request_copy
from backends.http_deadline import (
    MAX_RESPONSE_BYTES,
    SilenceWatchdog,
    refused,
    send_or_fault,
    status_fault,
)
from backends.server_structured import (
    PROBE_MAX_TOKENS,
    PROBE_PROMPT,
    PROBES,
    ProbeMemory,
    ProbeReply,
    ProbeResult,
    dialects_for,
    names_the_format,
    probe,
    response_format,
    with_schema_instructions,
)
from backends.structured_output import extract_json, one_line
from backends.work_log import WorkLog
from hyperlocal.errors import (
    BackendBusy,
    BackendTimeout,
    BackendUnavailable,
    ConfigurationError,
    HyperlocalError,
    InvalidModelOutput,
)
from hyperlocal.models import BackendIdentity, FlyerCopy, ImagePrompt
from hyperlocal.prompts.llm_tokens import (
    ChatMessage,
    TextTokenCounter,
    count_messages,
    default_counter,
)
from hyperlocal.settings import TextSettings

DEFAULT_TEMPERATURE = 0.7
#: Answers asked per call before giving up with ``InvalidModelOutput``.
ATTEMPTS = 3
#: Connecting never needs long: a refused or unroutable server should fail fast.
CONNECT_TIMEOUT_S = 10.0
#: How much slower than its measured speed an answer may come before its budget ends.
BUDGET_SLACK = 2.0
#: Tokens an answer needs before its speed counts as a measurement.
RATE_AFTER_TOKENS = 8
#: Weight of the newest measurement in a server's average speed.
RATE_WEIGHT = 0.5
#: The most of an error body read (the message is cut to a line anyway).
ERROR_BYTES = 64 * 1024
#: Words in a 200 answer's error object that suggest asking again later will work.
_TRANSIENT_WORDS = (
    "overload",
    "busy",
    "rate limit",
    "too many",
    "timeout",
    "timed out",
    "try again",
    "unavailable",
    "capacity",
    "loading",
)
#: Words of a 400 that says the conversation does not fit the model's context window
#: (OpenAI and vLLM: "maximum context length is ..."; llama.cpp: "exceeds the available
#: context size"; Ollama and LM Studio: "context length", "n_ctx").
_OVERFLOW_WORDS = (
    "maximum context length",
    "context length",
    "context size",
    "context window",
    "n_ctx",
    "prompt is too long",
)
_KEY_HINT = "the server refused the API key: set HYPERLOCAL_TEXT__API_KEY"
_CHAT_PATH = "/chat/completions"


@dataclass(frozen=True)
class TextStats:
    """Totals of one backend's chat requests (tokens per second is a benchmark's job)."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    estimated_requests: int
    seconds: float


@dataclass(frozen=True)
class _Refusal:
    """A non-200 answer: its status and the server's message (one line, key scrubbed)."""

    status: int
    message: str


@dataclass
class _Answer:
    """A 200 answer, streamed or not: the text and what it cost."""

    text: str = ""
    finish: str | None = None
    error: str | None = None
    usage: Any = None
    deltas: int = 0
    complete: bool = False
    first_token_at: float | None = None
    last_token_at: float | None = None


def _public_url(url: str) -> str:
    """Return ``url`` without user and password, safe for messages and logs."""
    parsed = httpx.URL(url)
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    return str(parsed).rstrip("/")


def _text_of(content: Any) -> str:
    """Return a message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error)


class OpenAITextBackend:
    """Copy and art direction from an OpenAI-compatible chat server.

    One ``httpx.Client`` serves every thread: requests from concurrent variants
    go out together (a batching server sees them at once); only the small
    caches and counters take a lock.
    """

    # What each (public base URL, model) does with schemas: shared by every backend of
    # the process (``backends.server_structured.PROBES``), text and vision.
    _format_support: ClassVar[ProbeMemory] = PROBES
    # Decode speed per (public base URL, model), tokens per second; and the servers that
    # refused ``stream_options``.
    _rates: ClassVar[dict[tuple[str, str], float]] = {}
    _no_stream_options: ClassVar[set[tuple[str, str]]] = set()
    _class_lock: ClassVar[threading.Lock] = threading.Lock()
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
        self._client = httpx.Client(
            # httpx turns a URL's user:password into Basic auth, which would replace the
            # Bearer header: with a key set, the key wins and the URL goes without them.
            base_url=self._public_url if key else self._base_url,
            headers=headers,
            # Each read waits at most timeout_s: the silence deadline, also before headers.
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
            transport=transport,
        )
        self._lock = threading.Lock()
        self._offered: list[str] | None = None
        self._requests = 0
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._estimated = 0
        self._seconds = 0.0

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
        self._client.close()

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
        response = self._send("GET", "/models")
        if response.status_code != 200:
            raise self._fault(response.status_code, self._server_message(response), "/models")
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
        with self._lock:
            return TextStats(
                requests=self._requests,
                prompt_tokens=self._prompt_tokens,
                completion_tokens=self._completion_tokens,
                estimated_requests=self._estimated,
                seconds=round(self._seconds, 6),
            )

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
            return Health(role="text", kind="openai", ok=False, detail=self._scrub(detail))

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
        outcome = self._exchange(self._payload(messages, max_tokens=1), messages, None)
        if isinstance(outcome, _Refusal):
            raise self._fault(outcome.status, outcome.message, _CHAT_PATH)
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
            return self._text(self._exchange(payload, messages, log))
        schema = answer_type.model_json_schema()
        constrained = {
            **payload,
            "response_format": response_format(probed.dialect, answer_type.__name__, schema),
        }
        outcome = self._exchange(constrained, messages, log)
        if isinstance(outcome, _Refusal) and self._refuses_format(outcome):
            fallen = probed.refused_later(f"HTTP {outcome.status}: {outcome.message}")
            self._format_support.remember(self._key(), fallen)
            if log is not None:
                log.structured_output(fallen.label)
                log.note(fallen.note())
            plain = with_schema_instructions(messages, schema)
            return self._text(self._exchange(self._payload(plain), plain, log))
        return self._text(outcome)

    @staticmethod
    def _refuses_format(refusal: _Refusal) -> bool:
        """Whether a non-200 answer to a request with a schema is about the schema."""
        if refusal.status == 500:
            return True
        return refusal.status in (400, 422) and names_the_format(refusal.message)

    def _probe_send(self, format_field: dict[str, Any], log: WorkLog | None) -> ProbeReply:
        """Send the probe question with ``format_field``; return what the server did with it."""
        messages = [ChatMessage(role="user", content=PROBE_PROMPT)]
        payload = {
            **self._payload(messages, max_tokens=PROBE_MAX_TOKENS),
            "temperature": 0.0,
            "response_format": format_field,
        }
        outcome = self._exchange(payload, messages, log, progress=False)
        if isinstance(outcome, _Refusal):
            if self._refuses_format(outcome):
                return ProbeReply(refused=f"HTTP {outcome.status}: {one_line(outcome.message, 80)}")
            raise self._fault(outcome.status, outcome.message, _CHAT_PATH)
        if outcome.error is not None:
            fault = self._error_fault(outcome.error)
            if isinstance(fault, BackendBusy):
                raise fault
            return ProbeReply(refused=f"error: {one_line(outcome.error, 80)}")
        return ProbeReply(text=outcome.text)

    def _text(self, outcome: _Answer | _Refusal) -> str:
        """Return an answer's text; raise the fault of a refusal or an unusable answer."""
        if isinstance(outcome, _Refusal):
            raise self._fault(outcome.status, outcome.message, _CHAT_PATH)
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

    def _error_fault(self, error: str) -> HyperlocalError:
        """Return the fault of an error object in a 200 answer (busy if it sounds passing)."""
        text = self._scrub(one_line(error, 200))
        if any(word in text.lower() for word in _TRANSIENT_WORDS):
            return BackendBusy(f"{self._public_url} answered with an error: {text}")
        return InvalidModelOutput(f"the server answered with an error: {text}")

    # -- HTTP -----------------------------------------------------------------------------

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
        if self._key() not in self._no_stream_options:
            payload["stream_options"] = {"include_usage": True}
        if self.seed is not None:
            payload["seed"] = self.seed
        return payload

    def _slot(self) -> AbstractContextManager[object]:
        """Held around every request (a subclass bounds requests in flight)."""
        return nullcontext()

    def _exchange(
        self,
        payload: dict[str, Any],
        messages: list[ChatMessage],
        log: WorkLog | None,
        *,
        progress: bool = True,
    ) -> _Answer | _Refusal:
        """Send one chat request and read its answer, streamed or not; record it.

        Returns the answer (its error object, if any, unraised) or the refusal; tokens
        are reported to ``log`` as they arrive unless ``progress`` is False. Raises
        ``BackendTimeout`` after ``timeout_s`` without a token or past the answer's
        budget, closing the connection so the server stops; ``BackendUnavailable`` for
        a server that cannot be reached or hangs up.
        """
        started = time.monotonic()
        answer = _Answer()
        outcome: _Answer | _Refusal = answer
        tokens_to = log if progress else None
        try:
            outcome = self._stream(payload, answer, tokens_to)
            if (
                isinstance(outcome, _Refusal)
                and outcome.status in (400, 422)
                and "stream_options" in outcome.message.lower()
                and "stream_options" in payload
            ):
                with self._class_lock:
                    self._no_stream_options.add(self._key())
                retry = {k: v for k, v in payload.items() if k != "stream_options"}
                outcome = self._stream(retry, answer, tokens_to)
        finally:
            self._record(messages, outcome, time.monotonic() - started, log)
        return outcome

    def _stream(
        self, payload: dict[str, Any], answer: _Answer, log: WorkLog | None
    ) -> _Answer | _Refusal:
        key = (self._public_url, str(payload.get("model", "")))
        max_tokens = int(payload.get("max_tokens") or self.max_tokens)
        rate = self._rate(key)
        budget = None if rate is None else self._budget_for(max_tokens, rate)
        with self._slot():
            watchdog = SilenceWatchdog(self.timeout_s, budget)
            outcome: _Answer | _Refusal = answer
            try:
                with (
                    watchdog,
                    self._client.stream("POST", _CHAT_PATH.lstrip("/"), json=payload) as response,
                ):
                    watchdog.watch(response)
                    try:
                        outcome = self._read(response, answer, watchdog, log, max_tokens)
                    finally:
                        # Before the connection goes back to the pool: never shut it after.
                        watchdog.stop()
            except HyperlocalError:
                raise
            except Exception as exc:
                raise self._transport_fault(exc, watchdog, answer) from None
            if watchdog.fired and not answer.complete:
                raise self._stalled(watchdog, answer)
        self._learn_rate(key, answer)
        return outcome

    def _read(
        self,
        response: httpx.Response,
        answer: _Answer,
        watchdog: SilenceWatchdog,
        log: WorkLog | None,
        max_tokens: int,
    ) -> _Answer | _Refusal:
        if response.status_code != 200:
            body = _read_upto(response, ERROR_BYTES)
            return _Refusal(response.status_code, self._message_of(response.status_code, body))
        if "text/event-stream" in response.headers.get("content-type", "").lower():
            self._read_events(response.iter_lines(), answer, watchdog, log, max_tokens)
        else:
            self._read_body(response, answer, watchdog, log, max_tokens)
        return answer

    def _budget_for(self, max_tokens: int, rate: float) -> float:
        return self.timeout_s + BUDGET_SLACK * max_tokens / rate

    def _read_events(
        self,
        lines: Iterator[str],
        answer: _Answer,
        watchdog: SilenceWatchdog,
        log: WorkLog | None,
        max_tokens: int,
    ) -> None:
        """Read server-sent events into ``answer`` until ``[DONE]`` or the end of the body."""
        parts: list[str] = []
        size = 0
        for line in lines:
            size += len(line) + 1
            if size > MAX_RESPONSE_BYTES:
                raise BackendUnavailable(
                    f"{self._public_url}{_CHAT_PATH} streamed more than "
                    f"{MAX_RESPONSE_BYTES} bytes: is it a chat server?"
                )
            if not line.startswith("data:"):
                continue  # comments (": ping"), event names, blank separators
            data = line[5:].strip()
            if data == "[DONE]":
                answer.complete = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise InvalidModelOutput(
                    f"the server's stream holds an event that is not JSON: {one_line(data, 80)!r}"
                ) from None
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):
                answer.error = _error_text(chunk["error"])
                answer.complete = True
                break
            self._take_chunk(chunk, answer, parts, watchdog, log, max_tokens)
        answer.text = "".join(parts)

    def _take_chunk(
        self,
        chunk: dict[str, Any],
        answer: _Answer,
        parts: list[str],
        watchdog: SilenceWatchdog,
        log: WorkLog | None,
        max_tokens: int,
    ) -> None:
        if isinstance(chunk.get("usage"), dict):
            answer.usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            if not isinstance(delta, dict):
                continue
            piece = _text_of(delta.get("content"))
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if piece:
                parts.append(piece)
            if piece or thinking:
                self._token_arrived(answer, watchdog, log, max_tokens)
            if choice.get("finish_reason"):
                answer.finish = str(choice["finish_reason"])
                answer.complete = True

    def _token_arrived(
        self, answer: _Answer, watchdog: SilenceWatchdog, log: WorkLog | None, max_tokens: int
    ) -> None:
        now = time.monotonic()
        watchdog.progress()
        answer.deltas += 1
        answer.first_token_at = answer.first_token_at or now
        answer.last_token_at = now
        if answer.deltas == RATE_AFTER_TOKENS and watchdog.budget_s is None:
            seconds = now - answer.first_token_at
            if seconds > 0:
                # The first answer from this server: its own speed sets its budget.
                watchdog.limit(self._budget_for(max_tokens, (answer.deltas - 1) / seconds))
        if log is not None:
            log.tokens(answer.deltas)

    def _read_body(
        self,
        response: httpx.Response,
        answer: _Answer,
        watchdog: SilenceWatchdog,
        log: WorkLog | None,
        max_tokens: int,
    ) -> None:
        """Read a plain JSON answer (a server that does not stream) into ``answer``."""
        raw = _read_upto(response, MAX_RESPONSE_BYTES + 1)
        if len(raw) > MAX_RESPONSE_BYTES:
            raise BackendUnavailable(
                f"{self._public_url}{_CHAT_PATH} answered more than {MAX_RESPONSE_BYTES} bytes"
            )
        text = raw.decode("utf-8", "replace")
        if text.lstrip().startswith("data:"):  # events with the wrong content type
            self._read_events(iter(text.splitlines()), answer, watchdog, log, max_tokens)
            return
        try:
            body = json.loads(text)
        except ValueError:
            raise InvalidModelOutput(
                f"the server's answer is not JSON: {one_line(text, 80)!r}"
            ) from None
        if not isinstance(body, dict):
            raise InvalidModelOutput("the server's answer is not a JSON object")
        answer.complete = True
        if body.get("error"):
            answer.error = _error_text(body["error"])
            return
        try:
            choice = body["choices"][0]
            answer.text = _text_of(choice.get("message", {}).get("content"))
            answer.finish = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise InvalidModelOutput("the server's answer has no choices[0].message") from None
        answer.usage = body.get("usage")
        if answer.text:
            self._token_arrived(answer, watchdog, log, max_tokens)

    def _transport_fault(
        self, exc: Exception, watchdog: SilenceWatchdog, answer: _Answer
    ) -> HyperlocalError | Exception:
        """Return the fault for what interrupted a request (the caller raises it)."""
        where = f"{self._public_url}{_CHAT_PATH}"
        if watchdog.fired or isinstance(exc, httpx.TimeoutException):
            if isinstance(exc, httpx.ConnectTimeout):
                return BackendUnavailable(
                    f"cannot reach {where} (ConnectTimeout): is the server running?"
                )
            return self._stalled(watchdog, answer)
        if isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
            return BackendUnavailable(
                f"cannot reach {where} ({type(exc).__name__}): is the server running?"
            )
        if isinstance(exc, httpx.TransportError):
            return BackendUnavailable(
                f"request to {where} failed ({type(exc).__name__}): is the server running?"
            )
        return exc

    def _stalled(self, watchdog: SilenceWatchdog, answer: _Answer) -> BackendTimeout:
        """Return the one-line fault of an answer given up on (silence or budget)."""
        where = f"{self._public_url}{_CHAT_PATH}"
        setting = f"{self._settings_prefix}TIMEOUT_S"
        if watchdog.fired == "budget":
            return BackendTimeout(
                f"the answer from {where} was still coming after {watchdog.budget_s or 0:.0f} s "
                f"({answer.deltas} tokens), far slower than this server's measured speed: "
                f"raise {setting} if the server is just busy"
            )
        return BackendTimeout(
            f"no token from {where} within {self.timeout_s:g} s ({answer.deltas} tokens so "
            f"far): the model may be too slow or stuck; raise {setting} (the longest wait "
            "for a token)"
        )

    def _rate(self, key: tuple[str, str]) -> float | None:
        with self._class_lock:
            return self._rates.get(key)

    def _learn_rate(self, key: tuple[str, str], answer: _Answer) -> None:
        if answer.deltas < RATE_AFTER_TOKENS or not answer.first_token_at:
            return
        seconds = (answer.last_token_at or answer.first_token_at) - answer.first_token_at
        if seconds <= 0:
            return
        measured = (answer.deltas - 1) / seconds
        with self._class_lock:
            before = self._rates.get(key)
            self._rates[key] = (
                measured if before is None else RATE_WEIGHT * measured + (1 - RATE_WEIGHT) * before
            )

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one short request; transport failures become passing faults (``send_or_fault``)."""
        with self._slot():
            return send_or_fault(
                self._client,
                method,
                path.lstrip("/"),
                self.timeout_s,
                where=f"{self._public_url}{path}",
                slow_hint=f"the server may be too slow for {self._settings_prefix}TIMEOUT_S",
                **kwargs,
            )

    def _server_message(self, response: httpx.Response) -> str:
        """Return the server's error message, one short line, with the key scrubbed."""
        return self._message_of(response.status_code, response.content)

    def _message_of(self, status: int, raw: bytes) -> str:
        message = raw.decode("utf-8", "replace")
        try:
            body = json.loads(message)
        except ValueError:
            body = None
        if isinstance(body, dict):
            error = body.get("error", body.get("detail", body.get("message")))
            if isinstance(error, dict):
                error = error.get("message", error)
            if error is not None:
                message = str(error)
        return self._scrub(one_line(message, 200)) or f"HTTP {status}"

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _fault(self, status: int, message: str, path: str) -> HyperlocalError:
        """Return the fault for a non-200 answer (the caller raises it)."""
        where = f"{self._public_url}{path}"
        common = status_fault(status, where, message, _KEY_HINT)
        if common is not None:
            return common
        if path.endswith(_CHAT_PATH) and status in (400, 413, 422) and self._overflows(message):
            return InvalidModelOutput(self._overflow_message(message))
        if path.endswith(_CHAT_PATH) and (
            status == 404 or (status in (400, 422) and "model" in message.lower())
        ):
            unknown = self._unknown_model_error(message)
            if unknown is not None:
                return unknown
        if status == 404:
            return ConfigurationError(
                f"{where} was not found (HTTP 404: {message}): check "
                f"{self._settings_prefix}BASE_URL (it usually ends in /v1)"
            )
        return refused(status, where, message)

    @staticmethod
    def _overflows(message: str) -> bool:
        lowered = message.lower()
        return any(word in lowered for word in _OVERFLOW_WORDS)

    def _overflow_message(self, message: str) -> str:
        """One line: the conversation outgrew the server's context window, and what to set.

        The setting comes before the server's words: a re-ask's reason is cut short.
        """
        return (
            "the conversation outgrew the server's context window: set "
            f"HYPERLOCAL_TEXT__CONTEXT_WINDOW to the server's real window (now "
            f"{self.context_window}) so prompts are fitted to it ({one_line(message, 120)})"
        )

    def _unknown_model_error(self, message: str) -> ConfigurationError | None:
        model = self._model or ""
        try:
            offered = self.offered_models(refresh=True)
        except HyperlocalError:
            offered = None
        if offered is not None and model in offered:
            return None
        listing = ", ".join(offered) if offered else "none listed"
        return ConfigurationError(
            f"model {model!r} is not available on {self._public_url} ({message}); "
            f"the server offers: {listing}; set {self._settings_prefix}MODEL"
        )

    def _record(
        self,
        messages: list[ChatMessage],
        outcome: _Answer | _Refusal,
        seconds: float,
        log: WorkLog | None,
    ) -> None:
        """Count one request: the server's usage where it sent one, else counted here."""
        if isinstance(outcome, _Refusal):
            prompt, completion, estimated = 0, 0, False
        else:
            usage = outcome.usage if isinstance(outcome.usage, dict) else {}
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            estimated = not (isinstance(prompt, int) and isinstance(completion, int))
            if estimated:
                counter = self._token_counter()
                prompt = count_messages(messages, counter)
                completion = counter.count(outcome.text) if outcome.text else outcome.deltas
        with self._lock:
            self._requests += 1
            self._prompt_tokens += int(prompt or 0)
            self._completion_tokens += int(completion or 0)
            self._estimated += int(estimated)
            self._seconds += seconds
        if log is not None:
            log.request(int(prompt or 0), int(completion or 0), seconds, estimated=estimated)


def _read_upto(response: httpx.Response, limit: int) -> bytes:
    """Return at most ``limit`` bytes of a streamed body (the rest is left unread)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]
