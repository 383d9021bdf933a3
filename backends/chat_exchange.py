"""Chat completions over HTTP, streamed, with a silence deadline and an overall budget.

``ChatExchange`` sends the requests of one OpenAI-compatible server (the text and
vision backends both talk through it): short plain requests (``GET /models``)
through ``http_deadline.send_or_fault``, and chat completions as server-sent
events, read into a ``ChatAnswer`` by ``chat_answers.AnswerReader`` (or a
``ChatRefusal`` for a non-200 answer, its message from
``chat_faults.server_message``), each counted in its ``RequestTally``.
Transport failures are passing faults: ``BackendUnavailable`` for a server that
cannot be reached or hangs up, ``BackendTimeout`` for silence or a spent budget.

Every chat request asks for server-sent events (``stream: true``, usage in the
last event where the server supports ``stream_options``; a server that refuses
``stream_options`` is asked again without it and remembered). ``timeout_s`` is
the longest silence: no token for that long (the first token's wait includes
reading the prompt) and a ``SilenceWatchdog`` shuts the connection, which also
tells the server to stop generating. The whole answer has a budget too::

    budget_s = timeout_s + BUDGET_SLACK * max_tokens / rate

where ``rate`` is this server and model's decode speed in tokens per second, an
exponential average over earlier answers (``TokenRates``), or for the first
answer its own speed once ``RATE_AFTER_TOKENS`` tokens have arrived (until then
only the silence deadline applies). An answer that keeps to half the measured
speed, after a prompt read within ``timeout_s``, always fits. Servers that answer
a plain JSON body to a stream request are read the old way: the body is their
one "token".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

import httpx

from backends.chat_answers import (
    AnswerReader,
    ChatAnswer,
    ChatRefusal,
    RequestTally,
    read_upto,
)
from backends.chat_faults import server_message
from backends.http_deadline import SilenceWatchdog, send_or_fault
from backends.work_log import WorkLog
from hyperlocal.errors import BackendTimeout, BackendUnavailable, HyperlocalError
from hyperlocal.prompts.llm_tokens import ChatMessage, TextTokenCounter

CHAT_PATH = "/chat/completions"
#: How much slower than its measured speed an answer may come before its budget ends.
BUDGET_SLACK = 2.0
#: Tokens an answer needs before its speed counts as a measurement.
RATE_AFTER_TOKENS = 8
#: Weight of the newest measurement in a server's average speed.
RATE_WEIGHT = 0.5
#: The most of an error body read (the message is cut to a line anyway).
ERROR_BYTES = 64 * 1024

#: What is learned about a server is kept per (public base URL, model).
ServerKey = tuple[str, str]


class TokenRates:
    """Decode speed per (public URL, model) in tokens per second, for the process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rates: dict[ServerKey, float] = {}

    def get(self, key: ServerKey) -> float | None:
        """Return the average speed measured for ``key``, or None before any."""
        with self._lock:
            return self._rates.get(key)

    def learn(self, key: ServerKey, answer: ChatAnswer) -> None:
        """Fold ``answer``'s speed into ``key``'s average (too short an answer says nothing)."""
        if answer.deltas < RATE_AFTER_TOKENS or not answer.first_token_at:
            return
        seconds = (answer.last_token_at or answer.first_token_at) - answer.first_token_at
        if seconds <= 0:
            return
        measured = (answer.deltas - 1) / seconds
        with self._lock:
            before = self._rates.get(key)
            self._rates[key] = (
                measured if before is None else RATE_WEIGHT * measured + (1 - RATE_WEIGHT) * before
            )

    def clear(self) -> None:
        """Forget every speed (tests: loopback ports get reused)."""
        with self._lock:
            self._rates.clear()


#: The process's measured speeds, shared by every text and vision backend.
TOKEN_RATES = TokenRates()


class ChatExchange:
    """Requests to one chat server through ``client``; thread-safe.

    ``public_url`` (no user or password) names the server in messages,
    ``settings_prefix`` the settings they point at, ``secret`` is scrubbed from the
    server's messages, ``slot`` is held around every request (a vision backend
    bounds the requests in flight with it), and ``counter`` returns the tokenizer
    that counts what a server sent no usage for (``tally``).
    """

    # The servers that refused ``stream_options``.
    _no_stream_options: ClassVar[set[ServerKey]] = set()
    _class_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        client: httpx.Client,
        public_url: str,
        *,
        timeout_s: float,
        max_tokens: int,
        settings_prefix: str,
        counter: Callable[[], TextTokenCounter],
        secret: str | None = None,
        slot: Callable[[], AbstractContextManager[object]] = nullcontext,
        rates: TokenRates = TOKEN_RATES,
    ) -> None:
        self.client = client
        self.public_url = public_url
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.settings_prefix = settings_prefix
        self._secret = secret
        self._slot = slot
        self._rates = rates
        self.tally = RequestTally(counter)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()

    def takes_stream_options(self, model: str) -> bool:
        """Whether to ask this server and ``model`` for usage in the stream's last event."""
        with self._class_lock:
            return (self.public_url, model) not in self._no_stream_options

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one short request; transport failures become passing faults (``send_or_fault``)."""
        with self._slot():
            return send_or_fault(
                self.client,
                method,
                path.lstrip("/"),
                self.timeout_s,
                where=f"{self.public_url}{path}",
                slow_hint=f"the server may be too slow for {self.settings_prefix}TIMEOUT_S",
                **kwargs,
            )

    def chat(
        self,
        payload: dict[str, Any],
        messages: list[ChatMessage],
        log: WorkLog | None,
        *,
        progress: bool = True,
    ) -> ChatAnswer | ChatRefusal:
        """Send one chat request and read its answer, streamed or not; record it.

        Returns the answer (its error object, if any, unraised) or the refusal; tokens
        are reported to ``log`` as they arrive unless ``progress`` is False. Raises
        ``BackendTimeout`` after ``timeout_s`` without a token or past the answer's
        budget, closing the connection so the server stops; ``BackendUnavailable`` for
        a server that cannot be reached, hangs up or sends too much;
        ``InvalidModelOutput`` for a body that is no chat answer.
        """
        started = time.monotonic()
        answer = ChatAnswer()
        outcome: ChatAnswer | ChatRefusal = answer
        tokens_to = log if progress else None
        try:
            outcome = self._stream(payload, answer, tokens_to)
            if (
                isinstance(outcome, ChatRefusal)
                and outcome.status in (400, 422)
                and "stream_options" in outcome.message.lower()
                and "stream_options" in payload
            ):
                with self._class_lock:
                    self._no_stream_options.add((self.public_url, str(payload.get("model", ""))))
                retry = {k: v for k, v in payload.items() if k != "stream_options"}
                outcome = self._stream(retry, answer, tokens_to)
        finally:
            self.tally.record(messages, outcome, time.monotonic() - started, log)
        return outcome

    def _stream(
        self, payload: dict[str, Any], answer: ChatAnswer, log: WorkLog | None
    ) -> ChatAnswer | ChatRefusal:
        key = (self.public_url, str(payload.get("model", "")))
        max_tokens = int(payload.get("max_tokens") or self.max_tokens)
        rate = self._rates.get(key)
        budget = None if rate is None else self._budget_for(max_tokens, rate)
        with self._slot():
            watchdog = SilenceWatchdog(self.timeout_s, budget)
            outcome: ChatAnswer | ChatRefusal = answer
            try:
                with (
                    watchdog,
                    self.client.stream("POST", CHAT_PATH.lstrip("/"), json=payload) as response,
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
        self._rates.learn(key, answer)
        return outcome

    def _read(
        self,
        response: httpx.Response,
        answer: ChatAnswer,
        watchdog: SilenceWatchdog,
        log: WorkLog | None,
        max_tokens: int,
    ) -> ChatAnswer | ChatRefusal:
        if response.status_code != 200:
            body = read_upto(response, ERROR_BYTES)
            return ChatRefusal(
                response.status_code, server_message(response.status_code, body, self._secret)
            )

        def on_token() -> None:
            self._token_arrived(answer, watchdog, log, max_tokens)

        AnswerReader(answer, f"{self.public_url}{CHAT_PATH}", on_token).read(response)
        return answer

    def _budget_for(self, max_tokens: int, rate: float) -> float:
        return self.timeout_s + BUDGET_SLACK * max_tokens / rate

    def _token_arrived(
        self, answer: ChatAnswer, watchdog: SilenceWatchdog, log: WorkLog | None, max_tokens: int
    ) -> None:
        """Note a token: the silence starts again; a first answer's speed sets its budget."""
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

    def _transport_fault(
        self, exc: Exception, watchdog: SilenceWatchdog, answer: ChatAnswer
    ) -> HyperlocalError | Exception:
        """Return the fault for what interrupted a request (the caller raises it)."""
        where = f"{self.public_url}{CHAT_PATH}"
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

    def _stalled(self, watchdog: SilenceWatchdog, answer: ChatAnswer) -> BackendTimeout:
        """Return the one-line fault of an answer given up on (silence or budget)."""
        where = f"{self.public_url}{CHAT_PATH}"
        setting = f"{self.settings_prefix}TIMEOUT_S"
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
