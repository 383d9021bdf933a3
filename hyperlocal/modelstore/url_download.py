"""Downloading one URL file: Range resume, retries with backoff, sha256, atomic rename.

Into ``<file>.part`` (resumed with ``Range`` and ``If-Range``, the ETag or
Last-Modified kept in ``<file>.part.json``), dropped connections, timeouts, 429
and 5xx retried while bytes keep coming, the sha256 compared with the setting,
then renamed into place with a ``<file>.sha256`` record. A token goes as a
Bearer token over https (or loopback) to the first host only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

from pydantic import SecretStr

from hyperlocal.errors import DownloadFailed, first_line
from hyperlocal.files import file_hasher, write_atomic
from hyperlocal.modelstore.progress import NoProgress, TransferProgress, human_bytes
from hyperlocal.modelstore.references import (
    PULL_COMMAND,
    digest_record,
    display_reference,
    part_meta_path,
    part_path,
    read_part_meta,
)
from hyperlocal.settings import RetrySettings

try:  # flock keeps two pulls of one file apart; Windows has no fcntl (no lock there).
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms we test
    fcntl = None  # type: ignore[assignment]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")

log = logging.getLogger("hyperlocal.models")


class _Passing(Exception):
    """A download fault worth another try (dropped connection, timeout, 429, 5xx)."""


def _auth_allowed(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.hostname or "") in _LOOPBACK


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def _discard_part(dest: Path) -> None:
    part_path(dest).unlink(missing_ok=True)
    part_meta_path(dest).unlink(missing_ok=True)


@contextlib.contextmanager
def _download_lock(dest: Path) -> Iterator[None]:
    """Hold ``<dest>.lock``: a second pull of the same file waits for the first."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock = dest.with_name(dest.name + ".lock")
    with open(lock, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another download of %s", dest.name)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _looks_like_safetensors(path: Path) -> bool:
    """Return True when ``path`` starts as a safetensors file does (header length, then JSON)."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    header = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < header <= path.stat().st_size - 8


def download_url(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    token: SecretStr | None = None,
    retry: RetrySettings | None = None,
    progress: TransferProgress | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` through ``<dest>.part``, resuming what an earlier try left.

    An existing part is continued with ``Range: bytes=N-`` and ``If-Range`` (the
    ETag or Last-Modified recorded when it began), so a file that changed on the
    server is never spliced: the server answers 200 and the download starts over.
    Dropped connections, timeouts, 429 and 5xx are retried (``retry``: tries in a
    row without progress, with backoff) and resumed. The finished file's sha256 is
    compared with ``sha256`` when given: a mismatch deletes the part and raises;
    otherwise the part is renamed onto ``dest`` and ``<dest>.sha256`` records the
    digest for ``verify``. ``token`` is sent as a Bearer token over https (or to
    loopback) and never after a redirect to another host. Raises ``DownloadFailed``
    with one line; messages and logs never carry the token or the URL's query.
    """
    import httpx

    retry = retry or RetrySettings()
    progress = progress or NoProgress()
    shown = display_reference(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _download_lock(dest):
        if dest.is_file():
            return dest
        left = retry.attempts
        failures = 0
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 15.0))
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            while True:
                before = part_path(dest).stat().st_size if part_path(dest).is_file() else 0
                try:
                    digest = _fetch_once(client, url, dest, token, progress)
                    break
                except _Passing as fault:
                    now = part_path(dest).stat().st_size if part_path(dest).is_file() else 0
                    if now > before:
                        left = retry.attempts  # progress was made: the count starts again
                    if left <= 0:
                        kept = (
                            f"; the {human_bytes(now)} fetched are kept in {part_path(dest).name} "
                            f"and the next `{PULL_COMMAND}` resumes there"
                            if now
                            else ""
                        )
                        raise DownloadFailed(f"downloading {shown} failed: {fault}{kept}") from None
                    left -= 1
                    failures += 1
                    delay = retry.delay_s * 2 ** (failures - 1)
                    delay *= 1 + retry.jitter * random.random()
                    log.warning("%s: %s; trying again in %.1f s", dest.name, fault, delay)
                    time.sleep(min(delay, 120.0))
                finally:
                    progress.finish()
        return _finish(dest, shown, digest, sha256)


def _finish(dest: Path, shown: str, got: str, expected: str | None) -> Path:
    part = part_path(dest)
    if expected and got != expected:
        _discard_part(dest)
        raise DownloadFailed(
            f"{shown}: sha256 mismatch: expected {expected}, got {got}; the download was "
            "deleted (check the URL and the sha256 setting)"
        )
    if not _looks_like_safetensors(part):
        with open(part, "rb") as handle:
            head = handle.read(40)
        _discard_part(dest)
        raise DownloadFailed(
            f"{shown} is not a safetensors file (it starts with {head[:24]!r}); the download "
            "was deleted (a web page instead of the model? check the URL and "
            "HYPERLOCAL_MODELS__DOWNLOAD_TOKEN)"
        )
    os.replace(part, dest)
    write_atomic(digest_record(dest), f"{got}  {dest.name}\n")
    part_meta_path(dest).unlink(missing_ok=True)
    return dest


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """Return (start, total) from ``bytes 100-199/200`` or ``bytes */200``."""
    match = re.match(r"bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)", value or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) != "*" else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _open_response(client: Any, url: str, headers: dict[str, str], token: SecretStr | None) -> Any:
    """Send GET, following up to 10 redirects; the token stays with the first origin."""
    import httpx

    first = _origin(url)
    current = url
    for _ in range(10):
        sent = dict(headers)
        if token is not None and _origin(current) == first and _auth_allowed(current):
            sent["Authorization"] = f"Bearer {token.get_secret_value()}"
        try:
            response = client.send(client.build_request("GET", current, headers=sent), stream=True)
        except httpx.TransportError as exc:
            raise _Passing(f"{type(exc).__name__}: {first_line(exc, limit=300)}") from None
        if response.is_redirect and "location" in response.headers:
            response.close()
            current = urljoin(current, response.headers["location"])
            continue
        return response
    raise DownloadFailed(f"{display_reference(url)}: more than 10 redirects")


def _fetch_once(
    client: Any, url: str, dest: Path, token: SecretStr | None, progress: TransferProgress
) -> str:
    """One request: continue or start the part; return the sha256 of the whole file."""
    import httpx

    shown = display_reference(url)
    part = part_path(dest)
    url_key = hashlib.sha256(url.encode()).hexdigest()
    meta = read_part_meta(dest)
    if part.is_file() and meta.get("url") != url_key:
        _discard_part(dest)  # left by another URL or an older layout: never spliced
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if meta.get("validator"):
            headers["If-Range"] = str(meta["validator"])
    response = _open_response(client, url, headers, token)
    try:
        status = response.status_code
        if status == 416 and offset:
            _start, total = _content_range(response.headers.get("content-range"))
            if total is not None and total == offset:
                return str(file_hasher(part).hexdigest())
            _discard_part(dest)
            raise _Passing("the server refused to resume the partial file; starting over")
        _check_status(status, shown, token)
        if status == 200 and "text/html" in response.headers.get("content-type", ""):
            raise DownloadFailed(
                f"{shown} answered with a web page, not a file (a login page? set "
                "HYPERLOCAL_MODELS__DOWNLOAD_TOKEN, or check the URL)"
            )
        if status == 206:
            start, total = _content_range(response.headers.get("content-range"))
            if start != offset:
                _discard_part(dest)
                raise _Passing(f"the server resumed at byte {start}, not {offset}; starting over")
            hasher = file_hasher(part)
            mode = "ab"
        else:  # 200: the whole file (the server ignored Range, or the file changed)
            if offset:
                log.info("%s: the server sent the whole file; starting over", dest.name)
            offset = 0
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
            hasher = hashlib.sha256()
        validator = response.headers.get("etag") or response.headers.get("last-modified")
        if validator and validator.startswith("W/"):
            validator = response.headers.get("last-modified")  # If-Range needs a strong one
        if mode == "wb" or not meta:
            write_atomic(
                part_meta_path(dest),
                json.dumps({"url": url_key, "validator": validator, "total": total}),
            )
        progress.start(dest.name, total, offset)
        written = offset
        with open(part, mode) as handle:
            try:
                written += _copy_body(response, handle, hasher, progress)
            except httpx.TransportError as exc:
                raise _Passing(
                    f"connection lost at {human_bytes(handle.tell())}: {type(exc).__name__}"
                ) from None
            finally:
                handle.flush()
                os.fsync(handle.fileno())
        if total is not None and written != total:
            raise _Passing(f"the server sent {written} of {total} bytes")
        return hasher.hexdigest()
    finally:
        response.close()


def _copy_body(response: Any, handle: IO[bytes], hasher: Any, progress: TransferProgress) -> int:
    count = 0
    # Chunks as they arrive: a chunk size would make httpx hold back up to that many
    # bytes, lost from the part when the connection drops.
    for chunk in response.iter_raw():
        handle.write(chunk)
        hasher.update(chunk)
        count += len(chunk)
        progress.advance(len(chunk))
    return count


def _check_status(status: int, shown: str, token: SecretStr | None) -> None:
    """Raise for an answer that is not the file: passing faults retry, others fail at once."""
    if status in (200, 206):
        return
    if status == 429 or 500 <= status <= 599:
        raise _Passing(f"HTTP {status}")
    if status in (401, 403):
        hint = (
            "the server refused HYPERLOCAL_MODELS__DOWNLOAD_TOKEN (expired, or without access?)"
            if token is not None
            else "set HYPERLOCAL_MODELS__DOWNLOAD_TOKEN (e.g. a Civitai API key)"
        )
        raise DownloadFailed(f"{shown}: HTTP {status}: {hint}")
    if status in (404, 410):
        raise DownloadFailed(f"{shown}: HTTP {status}: no file at this URL (check the setting)")
    raise DownloadFailed(f"{shown}: HTTP {status}")
