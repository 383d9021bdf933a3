"""Secrets out of URLs: what a manifest, a log line or a ``repr`` may show of a URL.

A URL can carry a password (``http://user:password@host``, as A1111's
``--api-auth`` wants) or a credential in its query (a Civitai link's
``?token=``, a signed S3 URL); ``redact_url`` stars both and leaves the rest.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameters that carry credentials (Civitai's ``?token=``, signed URLs).
SECRET_QUERY_KEYS = frozenset(
    {
        "token",
        "key",
        "api_key",
        "apikey",
        "auth",
        "signature",
        "sig",
        "access_token",
        "password",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
    }
)


def redact_url(url: str) -> str:
    """Return ``url`` with its secrets replaced by stars: the password of a
    ``user:password@`` part and the values of credential query parameters
    (``?token=...``). Anything that is not an http(s)-style URL comes back unchanged.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(a URL that does not parse)"
    pairs = parse_qsl(parts.query, keep_blank_values=True) if parts.scheme else []
    secret_query = any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs)
    if not password and not secret_query:
        return url
    if password:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if secret_query:
        query = [(k, "***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


def redact_urls(value: Any) -> Any:
    """Return ``value`` (JSON-like data) with every URL in it passed through ``redact_url``."""
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, dict):
        return {k: redact_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_urls(v) for v in value]
    return value
