"""What an OpenAI-compatible chat server answered, read from the wire, and what it cost.

``ChatAnswer`` is a 200 answer (text, finish reason, an error object, usage, the
tokens as they came) and ``ChatRefusal`` a non-200 one. ``AnswerReader`` reads a
200 body into a ``ChatAnswer``: server-sent events (``data:`` lines up to
``[DONE]``, the first choice's deltas, reasoning deltas counted as progress too),
or a plain JSON body from a server that does not stream (its text is one
"token"), or events sent with the wrong content type. Bodies that are no chat
answer are ``InvalidModelOutput``; one past ``MAX_RESPONSE_BYTES`` is
``BackendUnavailable``.

``RequestTally`` keeps a backend's totals (``TextStats``): the server's usage
where it sent one, else the tokens counted here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from backends.http_deadline import MAX_RESPONSE_BYTES
from backends.structured_output import one_line
from backends.work_log import WorkLog
from hyperlocal.errors import BackendUnavailable, InvalidModelOutput
from hyperlocal.prompts.llm_tokens import ChatMessage, TextTokenCounter, count_messages


@dataclass(frozen=True)
class ChatRefusal:
    """A non-200 answer: its status and the server's message (one line, key scrubbed)."""

    status: int
    message: str


@dataclass
class ChatAnswer:
    """A 200 answer, streamed or not: the text and what it cost."""

    text: str = ""
    finish: str | None = None
    error: str | None = None
    usage: Any = None
    deltas: int = 0
    complete: bool = False
    first_token_at: float | None = None
    last_token_at: float | None = None


@dataclass(frozen=True)
class TextStats:
    """Totals of one backend's chat requests (tokens per second is a benchmark's job)."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    estimated_requests: int
    seconds: float


def read_upto(response: httpx.Response, limit: int) -> bytes:
    """Return at most ``limit`` bytes of a streamed body (the rest is left unread)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def _text_of(content: Any) -> str:
    """Return a message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _json_or_invalid(text: str, complaint: str) -> Any:
    """Return ``text`` parsed as JSON; raise ``InvalidModelOutput`` (``complaint``) if it is not."""
    try:
        return json.loads(text)
    except ValueError:
        raise InvalidModelOutput(f"{complaint}: {one_line(text, 80)!r}") from None


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error)


class AnswerReader:
    """Reads one 200 answer into ``answer``, calling ``on_token`` for every token.

    ``where`` (the URL, no secret in it) names the server in messages.
    """

    def __init__(self, answer: ChatAnswer, where: str, on_token: Callable[[], None]) -> None:
        self.answer = answer
        self.where = where
        self.on_token = on_token

    def read(self, response: httpx.Response) -> None:
        """Read ``response``'s body, events or plain JSON by its content type.

        Raises ``InvalidModelOutput`` for a body that is no chat answer,
        ``BackendUnavailable`` past ``MAX_RESPONSE_BYTES``, and what reading raises.
        """
        if "text/event-stream" in response.headers.get("content-type", "").lower():
            self._read_events(response.iter_lines())
        else:
            self._read_body(response)

    def _read_events(self, lines: Iterator[str]) -> None:
        """Read server-sent events into the answer until ``[DONE]`` or the end of the body."""
        answer = self.answer
        parts: list[str] = []
        size = 0
        for line in lines:
            size += len(line) + 1
            if size > MAX_RESPONSE_BYTES:
                raise BackendUnavailable(
                    f"{self.where} streamed more than {MAX_RESPONSE_BYTES} bytes: "
                    "is it a chat server?"
                )
            if not line.startswith("data:"):
                continue  # comments (": ping"), event names, blank separators
            data = line[5:].strip()
            if data == "[DONE]":
                answer.complete = True
                break
            chunk = _json_or_invalid(data, "the server's stream holds an event that is not JSON")
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):
                answer.error = _error_text(chunk["error"])
                answer.complete = True
                break
            self._take_chunk(chunk, parts)
        answer.text = "".join(parts)

    def _take_chunk(self, chunk: dict[str, Any], parts: list[str]) -> None:
        answer = self.answer
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
                self.on_token()
            if choice.get("finish_reason"):
                answer.finish = str(choice["finish_reason"])
                answer.complete = True

    def _read_body(self, response: httpx.Response) -> None:
        """Read a plain JSON answer (a server that does not stream) into the answer."""
        answer = self.answer
        raw = read_upto(response, MAX_RESPONSE_BYTES + 1)
        if len(raw) > MAX_RESPONSE_BYTES:
            raise BackendUnavailable(f"{self.where} answered more than {MAX_RESPONSE_BYTES} bytes")
        text = raw.decode("utf-8", "replace")
        if text.lstrip().startswith("data:"):  # events with the wrong content type
            self._read_events(iter(text.splitlines()))
            return
        body = _json_or_invalid(text, "the server's answer is not JSON")
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
            self.on_token()


class RequestTally:
    """Totals of a backend's chat requests; thread-safe.

    ``counter`` returns the tokenizer that counts what a server sent no usage for.
    """

    def __init__(self, counter: Callable[[], TextTokenCounter]) -> None:
        self._counter = counter
        self._lock = threading.Lock()
        self._requests = 0
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._estimated = 0
        self._seconds = 0.0

    def record(
        self,
        messages: list[ChatMessage],
        outcome: ChatAnswer | ChatRefusal,
        seconds: float,
        log: WorkLog | None,
    ) -> None:
        """Count one request, also in ``log``: the server's usage where it sent one, else
        counted here."""
        if isinstance(outcome, ChatRefusal):
            prompt, completion, estimated = 0, 0, False
        else:
            usage = outcome.usage if isinstance(outcome.usage, dict) else {}
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            estimated = not (isinstance(prompt, int) and isinstance(completion, int))
            if estimated:
                counter = self._counter()
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

    def stats(self) -> TextStats:
        """Return the totals so far (estimated tokens where no usage)."""
        with self._lock:
            return TextStats(
                requests=self._requests,
                prompt_tokens=self._prompt_tokens,
                completion_tokens=self._completion_tokens,
                estimated_requests=self._estimated,
                seconds=round(self._seconds, 6),
            )
