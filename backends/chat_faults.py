"""What an OpenAI-compatible chat server's answers mean as faults, in one line each.

The statuses every HTTP API shares (credentials, timeouts, a busy server) are
``http_deadline.status_fault``'s; this module adds what is a chat server's own:

- ``server_message``: the server's error message from a body (``error.message``,
  ``detail`` or ``message``), one short line, with the API key scrubbed out,
- ``chat_fault``: a non-200 answer as a fault: a 400/413/422 that says the
  conversation outgrew the context window is bad output (re-asked or replaced by
  the builtin copywriter), not a configuration error; a model the server does not
  offer (``unknown_model_error``, from ``GET /models``) and a 404 name the setting
  to fix,
- ``error_fault``: an error object inside a 200 answer, busy when its words sound
  passing (overloaded, out of memory, try again),
- ``refuses_format``: whether a refusal of a request with a schema is about the schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from backends.http_deadline import refused, status_fault
from backends.server_structured import names_the_format
from backends.structured_output import one_line
from hyperlocal.errors import (
    BackendBusy,
    ConfigurationError,
    HyperlocalError,
    InvalidModelOutput,
)

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


def scrub(text: str, secret: str | None) -> str:
    """Return ``text`` with ``secret`` (the API key, if any) replaced by ``***``."""
    return text.replace(secret, "***") if secret else text


def server_message(status: int, raw: bytes, secret: str | None) -> str:
    """Return the server's error message in ``raw``: one short line, key scrubbed.

    Falls back to the body's text, and to ``HTTP <status>`` for an empty body.
    """
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
    return scrub(one_line(message, 200), secret) or f"HTTP {status}"


def overflows(message: str) -> bool:
    """Whether a refusal's message says the conversation outgrew the context window."""
    lowered = message.lower()
    return any(word in lowered for word in _OVERFLOW_WORDS)


def overflow_message(message: str, context_window: int) -> str:
    """One line: the conversation outgrew the server's context window, and what to set.

    The setting comes before the server's words: a re-ask's reason is cut short.
    """
    return (
        "the conversation outgrew the server's context window: set "
        f"HYPERLOCAL_TEXT__CONTEXT_WINDOW to the server's real window (now "
        f"{context_window}) so prompts are fitted to it ({one_line(message, 120)})"
    )


def unknown_model_error(
    model: str, public_url: str, message: str, offered: list[str] | None, settings_prefix: str
) -> ConfigurationError | None:
    """Return the fault of asking for a model the server does not offer.

    None when ``offered`` (``GET /models``; None when it could not be listed) has the
    model: the refusal was about something else.
    """
    if offered is not None and model in offered:
        return None
    listing = ", ".join(offered) if offered else "none listed"
    return ConfigurationError(
        f"model {model!r} is not available on {public_url} ({message}); "
        f"the server offers: {listing}; set {settings_prefix}MODEL"
    )


def chat_fault(
    status: int,
    message: str,
    where: str,
    *,
    chat: bool,
    settings_prefix: str,
    overflow: Callable[[str], str],
    unknown_model: Callable[[str], ConfigurationError | None],
) -> HyperlocalError:
    """Return the fault for a non-200 answer from ``where`` (the caller raises it).

    ``chat`` says the request was a chat completion; ``overflow`` words a context
    overflow's message; ``unknown_model`` checks a refusal that may name the model.
    """
    common = status_fault(status, where, message, _KEY_HINT)
    if common is not None:
        return common
    if chat and status in (400, 413, 422) and overflows(message):
        return InvalidModelOutput(overflow(message))
    if chat and (status == 404 or (status in (400, 422) and "model" in message.lower())):
        unknown = unknown_model(message)
        if unknown is not None:
            return unknown
    if status == 404:
        return ConfigurationError(
            f"{where} was not found (HTTP 404: {message}): check "
            f"{settings_prefix}BASE_URL (it usually ends in /v1)"
        )
    return refused(status, where, message)


def error_fault(error: str, public_url: str, secret: str | None) -> HyperlocalError:
    """Return the fault of an error object in a 200 answer (busy if it sounds passing)."""
    text = scrub(one_line(error, 200), secret)
    if any(word in text.lower() for word in _TRANSIENT_WORDS):
        return BackendBusy(f"{public_url} answered with an error: {text}")
    return InvalidModelOutput(f"the server answered with an error: {text}")


def refuses_format(status: int, message: str) -> bool:
    """Whether a non-200 answer to a request with a schema is about the schema."""
    if status == 500:
        return True
    return status in (400, 422) and names_the_format(message)
