"""HTTP requests with deadlines httpx does not have: a whole answer's, and a stream's silence.

httpx's timeouts apply per network operation: a server that sends its headers
and then one byte now and then never times out, and one that streams without
end fills memory. Model servers under load, proxies and broken servers do both.
``request_within`` reads the body in chunks and gives up when the whole answer
takes longer than the deadline or grows past a size limit; ``send_or_fault``
also turns transport failures into the passing faults the steps retry, and
``status_fault`` the statuses every HTTP API shares (credentials, timeouts, a
busy server) into faults; the OpenAI and A1111 clients add what is their own.

A streamed answer (server-sent events, one token at a time) may rightly take
minutes; what must not last is silence. ``SilenceWatchdog`` watches one stream
from another thread: when no progress was reported for ``silence_s`` seconds, or
the whole answer passes its budget, it shuts the connection's socket down. The
reader, blocked in ``recv``, wakes at once with an error it can name, and the
server sees its client leave and stops generating (mlx_lm.server, vLLM and
llama.cpp all do), so a retry never finds the abandoned answer still running.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from types import TracebackType
from typing import Any, Literal

import httpx

from hyperlocal.errors import (
    BackendBusy,
    BackendTimeout,
    BackendUnavailable,
    ConfigurationError,
    HyperlocalError,
)

#: The largest answer read from a model server: generous for a base64 SDXL picture batch.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024


class ResponseTooLarge(httpx.TransportError):
    """The server kept sending past the size limit."""


def request_within(
    client: httpx.Client,
    method: str,
    url: str,
    deadline_s: float,
    max_bytes: int = MAX_RESPONSE_BYTES,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request and return the whole answer within ``deadline_s`` seconds.

    Raises ``httpx.ReadTimeout`` past the deadline (headers and body together),
    ``ResponseTooLarge`` past ``max_bytes``, and what ``client.stream`` raises.
    """
    deadline = time.monotonic() + deadline_s
    with client.stream(method, url, **kwargs) as response:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise ResponseTooLarge(f"answer larger than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout(
                    f"answer not complete within {deadline_s:g} s", request=response.request
                )
        # The body is decoded already: a rebuilt response must not decode it again.
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            status_code=response.status_code,
            headers=headers,
            content=b"".join(chunks),
            request=response.request,
        )


def send_or_fault(
    client: httpx.Client,
    method: str,
    url: str,
    deadline_s: float,
    where: str,
    slow_hint: str,
    **kwargs: Any,
) -> httpx.Response:
    """``request_within``, with transport failures mapped onto passing faults.

    ``where`` is the URL to name in messages (with no secret in it); ``slow_hint``
    ends the timeout message (what may be slow, which setting to raise). Raises
    ``BackendTimeout`` past the deadline and ``BackendUnavailable`` for a server
    that cannot be reached, hangs up or answers too much.
    """
    try:
        return request_within(client, method, url, deadline_s, **kwargs)
    except httpx.TimeoutException:
        raise BackendTimeout(
            f"no answer from {where} within {deadline_s:g} s: {slow_hint}"
        ) from None
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise BackendUnavailable(
            f"cannot reach {where} ({type(exc).__name__}): is the server running?"
        ) from None
    except httpx.TransportError as exc:
        raise BackendUnavailable(
            f"request to {where} failed ({type(exc).__name__}): is the server running?"
        ) from None


def status_fault(status: int, where: str, message: str, auth_hint: str) -> HyperlocalError | None:
    """Return the fault a non-200 status means on any HTTP API, or None for the client to decide.

    401/403: the credentials (``auth_hint`` says which setting); 408: a timeout; 429
    and 5xx: a busy server (passing faults, retried by the task). Other statuses
    (404, 400, 422) depend on the API and are left to the client.
    """
    if status in (401, 403):
        return ConfigurationError(f"{auth_hint} ({where} answered HTTP {status}: {message})")
    if status == 408:
        return BackendTimeout(f"{where} timed out the request (HTTP 408): {message}")
    if status == 429 or status >= 500:
        return BackendBusy(f"{where} is busy (HTTP {status}): {message}")
    return None


def refused(status: int, where: str, message: str) -> ConfigurationError:
    """Return the fault of a request the server refused for a reason of its own (HTTP 4xx)."""
    return ConfigurationError(f"{where} refused the request (HTTP {status}): {message}")


StopReason = Literal["silence", "budget"]


class SilenceWatchdog:
    """Shuts a streaming connection when no progress came for ``silence_s`` seconds, or when
    the whole exchange passes ``budget_s`` (None: no overall budget yet).

    Use as a context manager around the request (the clock starts on entering);
    hand it the response with ``watch`` once the headers are in, call ``progress``
    for every token, ``limit`` to set or change the budget, and ``stop`` once the
    answer is read, before the connection goes back to the pool. ``fired`` says why
    it gave up (``silence`` or ``budget``), or None. Thread-safe.
    """

    def __init__(self, silence_s: float, budget_s: float | None = None) -> None:
        self.silence_s = silence_s
        self._budget_s = budget_s
        self._cond = threading.Condition()
        self._started = self._last = time.monotonic()
        self._socket: socket.socket | None = None
        self._done = False
        self._fired: StopReason | None = None
        self._thread = threading.Thread(target=self._watch, name="stream-watchdog", daemon=True)

    def __enter__(self) -> SilenceWatchdog:
        with self._cond:
            self._started = self._last = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> StopReason | None:
        """Stop watching (nothing is shut after this returns); return why it fired, or None."""
        with self._cond:
            self._done = True
            self._cond.notify_all()
            return self._fired

    @property
    def fired(self) -> StopReason | None:
        """Why the watchdog gave up on the stream, or None while it has not."""
        with self._cond:
            return self._fired

    @property
    def budget_s(self) -> float | None:
        """The overall budget in seconds from the start, or None."""
        with self._cond:
            return self._budget_s

    def elapsed(self) -> float:
        """Seconds since the exchange started."""
        return time.monotonic() - self._started

    def watch(self, response: httpx.Response) -> None:
        """Find the socket under ``response`` (when the transport exposes it) to shut later."""
        stream = response.extensions.get("network_stream")
        found = None
        if stream is not None:
            with contextlib.suppress(Exception):
                found = stream.get_extra_info("socket")
        sock = found if isinstance(found, socket.socket) else None
        with self._cond:
            self._socket = sock
            fired = self._fired
        if fired and sock is not None:
            _shut(sock)

    def progress(self) -> None:
        """Report that a token arrived: the silence starts again."""
        with self._cond:
            self._last = time.monotonic()

    def limit(self, budget_s: float) -> None:
        """Set the overall budget (seconds from the start)."""
        with self._cond:
            self._budget_s = budget_s
            self._cond.notify_all()

    def _watch(self) -> None:
        with self._cond:
            while not self._done:
                now = time.monotonic()
                silence_left = self._last + self.silence_s - now
                budget_left = (
                    self._started + self._budget_s - now if self._budget_s is not None else math.inf
                )
                if silence_left <= 0 or budget_left <= 0:
                    self._fired = "silence" if silence_left <= 0 else "budget"
                    sock = self._socket
                    break
                self._cond.wait(min(silence_left, budget_left))
            else:
                return
        if sock is not None:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    """Shut a socket down for both directions: a blocked ``recv`` returns, the peer sees EOF.

    The plain socket's method, also for a TLS socket: the TLS layer is not thread-safe,
    the file descriptor is.
    """
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
