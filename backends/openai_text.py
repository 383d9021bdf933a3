"""The text backend for OpenAI-compatible chat servers (vLLM, mlx_lm, Ollama, LM Studio, OpenAI).

Speaks ``POST {base_url}/chat/completions`` and ``GET {base_url}/models`` with
httpx rather than the official ``openai`` client: httpx is already a
dependency, and calling it directly gives exact control of timeouts, of how
each HTTP status maps onto the fault tree, and of ``response_format`` probing
(local servers differ in how they refuse it), with no extra package.

Structured output: the first request to a (server, model) offers a JSON schema
as ``response_format``; a server that refuses it (400/422/500 naming it, or any
500 on that first probe followed by a plain success) is remembered and asked by
plain prompting from then on. Either way the answer is extracted, validated and
re-asked by ``backends.structured_output``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, SecretStr

from backends.base import ArtRequest, CopyRequest, Health
from backends.chat_prompts import PromptBudget, request_art, request_copy
from backends.http_deadline import refused, send_or_fault, status_fault
from backends.structured_output import extract_json, one_line
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
    count_messages,
    default_counter,
)
from hyperlocal.settings import TextSettings

DEFAULT_TEMPERATURE = 0.7
#: Answers asked per call before giving up with ``InvalidModelOutput``.
ATTEMPTS = 3
#: Connecting never needs long: a refused or unroutable server should fail fast.
CONNECT_TIMEOUT_S = 10.0
#: Words in an error that show the server refused ``response_format`` itself.
_FORMAT_WORDS = ("response_format", "json_schema", "metal")
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
_KEY_HINT = "the server refused the API key: set HYPERLOCAL_TEXT__API_KEY"


@dataclass(frozen=True)
class TextStats:
    """Totals of one backend's chat requests (tokens per second is a benchmark's job)."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    estimated_requests: int
    seconds: float


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


class OpenAITextBackend:
    """Copy and art direction from an OpenAI-compatible chat server.

    One ``httpx.Client`` serves every thread: requests from concurrent variants
    go out together (a batching server sees them at once); only the small
    caches and counters take a lock.
    """

    # Structured-output support per (public base URL, model): True, False; absent = not probed.
    # Class-level so every backend built for the same server shares what was learned.
    _format_support: ClassVar[dict[tuple[str, str], bool]] = {}
    _format_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: SecretStr | str | None = None,
        temperature: float | None = None,
        seed: int | None = 7,
        max_tokens: int = 800,
        context_window: int = 8192,
        timeout_s: float = 120.0,
        counter: TextTokenCounter | None = None,
        attempts: int = ATTEMPTS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Prepare a client for ``base_url``; no request is made until one is needed."""
        self._base_url = base_url.rstrip("/")
        self._public_url = _public_url(self._base_url)
        self._model = model
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        # Kept only to scrub it from server messages that might echo it back.
        self._secret = key or None
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
                            "set HYPERLOCAL_TEXT__MODEL"
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
            raise self._fault(response, "/models")
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
        """Return what is known of ``response_format`` support on this server and model."""
        support = self._format_support.get((self._public_url, self._model or ""))
        if support is None:
            return "not probed"
        return "json_schema" if support else "unsupported (plain prompting)"

    # -- the two jobs ---------------------------------------------------------------------

    def write_copy(self, request: CopyRequest) -> FlyerCopy:
        """Return valid copy for one variant that keeps every fact of the brief.

        Raises ``PassingFault`` (server down, slow or busy), ``InvalidModelOutput``
        after ``attempts`` answers, or ``ConfigurationError``.
        """
        return request_copy(self._ask_as, request, self._budget())

    def direct_art(self, request: ArtRequest) -> ImagePrompt:
        """Return the phrases of a picture with no lettering; raises like ``write_copy``."""
        return request_art(self._ask_as, request, self._budget())

    def _budget(self) -> PromptBudget:
        return PromptBudget(
            counter=self._token_counter(),
            context_window=self.context_window,
            max_output=self.max_tokens,
            attempts=self.attempts,
        )

    def _ask_as(self, messages: list[ChatMessage], answer_type: type[BaseModel]) -> str:
        return self._chat(messages, answer_type.__name__, answer_type.model_json_schema())

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
        except HyperlocalError as exc:
            return Health(
                role="text", kind="openai", ok=False, detail=f"{where}; {exc}", models=models
            )
        return Health(
            role="text",
            kind="openai",
            ok=True,
            detail=(
                f"{where}; structured output {self.structured_output()}; "
                f"one-token answer in {latency:.2f} s"
            ),
            models=models,
            latency_s=latency,
        )

    def _one_token_answer(self) -> float:
        """Ask for one token, probing ``response_format`` if not known yet; return seconds."""
        payload = self._payload([ChatMessage(role="user", content="Say OK.")], max_tokens=1)
        key = (self._public_url, str(payload["model"]))
        if self._format_support.get(key) is None:
            probe = {
                **payload,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "health", "schema": {"type": "object"}},
                },
            }
            started = time.monotonic()
            response = self._send("POST", "/chat/completions", json=probe)
            if response.status_code == 200:
                self._remember(key, True)
                return time.monotonic() - started
            if response.status_code not in (400, 422, 500):
                raise self._fault(response, "/chat/completions")
        started = time.monotonic()
        response = self._send("POST", "/chat/completions", json=payload)
        if response.status_code != 200:
            raise self._fault(response, "/chat/completions")
        if self._format_support.get(key) is None:
            self._remember(key, False)  # the probe was refused, plain prompting works
        return time.monotonic() - started

    # -- HTTP -----------------------------------------------------------------------------

    def _token_counter(self) -> TextTokenCounter:
        if self._counter is None:
            self._counter = default_counter()
        return self._counter

    def _payload(
        self, messages: list[ChatMessage], max_tokens: int | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in messages],
            "temperature": self.temperature,
            "max_tokens": max_tokens or self.max_tokens,
            "stream": False,
        }
        if self.seed is not None:
            payload["seed"] = self.seed
        return payload

    def _chat(self, messages: list[ChatMessage], name: str, schema: dict[str, Any]) -> str:
        """Return the text of one chat completion, probing ``response_format`` once."""
        payload = self._payload(messages)
        key = (self._public_url, payload["model"])
        support = self._format_support.get(key)
        if support is False:
            return self._complete(messages, payload)
        probe = {
            **payload,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": False},
            },
        }
        started = time.monotonic()
        response = self._send("POST", "/chat/completions", json=probe)
        if response.status_code == 200:
            if support is None:
                self._remember(key, True)
            return self._answer(messages, response, time.monotonic() - started)
        refused = response.status_code in (400, 422, 500) and any(
            word in response.text.lower() for word in _FORMAT_WORDS
        )
        if not refused and not (response.status_code == 500 and support is None):
            raise self._fault(response, "/chat/completions")
        if refused:
            self._remember(key, False)
        answer = self._complete(messages, payload)
        if not refused:
            # A bare 500 on the probe means "unsupported" only once plain prompting worked:
            # a server that fails both times is broken, not picky.
            self._remember(key, False)
        return answer

    def _remember(self, key: tuple[str, str], supported: bool) -> None:
        with self._format_lock:
            self._format_support[key] = supported

    def _complete(self, messages: list[ChatMessage], payload: dict[str, Any]) -> str:
        started = time.monotonic()
        response = self._send("POST", "/chat/completions", json=payload)
        if response.status_code != 200:
            raise self._fault(response, "/chat/completions")
        return self._answer(messages, response, time.monotonic() - started)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; transport failures become passing faults (``send_or_fault``)."""
        return send_or_fault(
            self._client,
            method,
            path.lstrip("/"),
            self.timeout_s,
            where=f"{self._public_url}{path}",
            slow_hint="the model may be too slow for HYPERLOCAL_TEXT__TIMEOUT_S",
            **kwargs,
        )

    def _server_message(self, response: httpx.Response) -> str:
        """Return the server's error message, one short line, with the key scrubbed."""
        message = response.text
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            error = body.get("error", body.get("detail", body.get("message")))
            if isinstance(error, dict):
                error = error.get("message", error)
            if error is not None:
                message = str(error)
        return self._scrub(one_line(message, 200)) or f"HTTP {response.status_code}"

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _fault(self, response: httpx.Response, path: str) -> HyperlocalError:
        """Return the fault for a non-200 answer (the caller raises it)."""
        status = response.status_code
        where = f"{self._public_url}{path}"
        message = self._server_message(response)
        common = status_fault(status, where, message, _KEY_HINT)
        if common is not None:
            return common
        if path.endswith("/chat/completions") and (
            status == 404 or (status in (400, 422) and "model" in message.lower())
        ):
            unknown = self._unknown_model_error(message)
            if unknown is not None:
                return unknown
        if status == 404:
            return ConfigurationError(
                f"{where} was not found (HTTP 404: {message}): check HYPERLOCAL_TEXT__BASE_URL "
                "(it usually ends in /v1)"
            )
        return refused(status, where, message)

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
            f"the server offers: {listing}; set HYPERLOCAL_TEXT__MODEL"
        )

    def _answer(self, messages: list[ChatMessage], response: httpx.Response, seconds: float) -> str:
        """Return the text of a 200 answer; record its usage; raise for an unusable one."""
        try:
            body = response.json()
        except ValueError:
            raise InvalidModelOutput(
                f"the server's answer is not JSON: {one_line(response.text, 80)!r}"
            ) from None
        if not isinstance(body, dict):
            raise InvalidModelOutput("the server's answer is not a JSON object")
        error = body.get("error")
        if error:
            if isinstance(error, dict):
                error = error.get("message", error)
            text = self._scrub(one_line(str(error), 200))
            if any(word in text.lower() for word in _TRANSIENT_WORDS):
                raise BackendBusy(f"{self._public_url} answered with an error: {text}")
            raise InvalidModelOutput(f"the server answered with an error: {text}")
        try:
            choice = body["choices"][0]
            content = _text_of(choice.get("message", {}).get("content"))
            finish = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise InvalidModelOutput("the server's answer has no choices[0].message") from None
        self._record(messages, content, body.get("usage"), seconds)
        if not content.strip():
            raise InvalidModelOutput("the model returned an empty answer")
        if finish == "length":
            try:
                extract_json(content)
            except InvalidModelOutput:
                raise InvalidModelOutput(
                    f"the answer was cut off at {self.max_tokens} tokens before its JSON ended: "
                    "raise HYPERLOCAL_TEXT__MAX_TOKENS"
                ) from None
        return content

    def _record(
        self, messages: list[ChatMessage], content: str, usage: Any, seconds: float
    ) -> None:
        prompt = completion = None
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        estimated = not (isinstance(prompt, int) and isinstance(completion, int))
        if estimated:
            counter = self._token_counter()
            prompt, completion = count_messages(messages, counter), counter.count(content)
        with self._lock:
            self._requests += 1
            self._prompt_tokens += int(prompt or 0)
            self._completion_tokens += int(completion or 0)
            self._estimated += int(estimated)
            self._seconds += seconds
