"""HTTP requests with a deadline for the whole answer, not only for each read.

httpx's timeouts apply per network operation: a server that sends its headers
and then one byte now and then never times out, and one that streams without
end fills memory. Model servers under load, proxies and broken servers do both.
``request_within`` reads the body in chunks and gives up when the whole answer
takes longer than the deadline or grows past a size limit; ``send_or_fault``
also turns transport failures into the passing faults the steps retry, and
``status_fault`` the statuses every HTTP API shares (credentials, timeouts, a
busy server) into faults; the OpenAI and A1111 clients add what is their own.
"""

from __future__ import annotations

import time
from typing import Any

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
