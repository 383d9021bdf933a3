"""Getting models onto this machine: ``pull`` a hub repository or a URL download.

Hub repositories go through ``huggingface_hub`` (only the files their purpose
needs, ``select_hub_files``); URLs through httpx into ``<file>.part`` with Range
resume, retries with backoff, a sha256 check and an atomic rename. Where each
model lands is ``hyperlocal.modelstore.store``; nothing here runs unless asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urljoin, urlsplit

from pydantic import SecretStr

from hyperlocal.errors import ConfigurationError, DownloadFailed
from hyperlocal.files import write_atomic
from hyperlocal.modelstore.store import (
    PULL_COMMAND,
    ModelEntry,
    Purpose,
    digest_record,
    display_reference,
    human_bytes,
    literal_pattern,
    part_meta_path,
    part_path,
    read_part_meta,
    select_hub_files,
)
from hyperlocal.modelstore.verify import hash_file
from hyperlocal.settings import ModelsSettings, RetrySettings

try:  # flock keeps two pulls of one file apart; Windows has no fcntl (no lock there).
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms we test
    fcntl = None  # type: ignore[assignment]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")

log = logging.getLogger("hyperlocal.models")


# -- progress -------------------------------------------------------------------------------


class TransferProgress(Protocol):
    """What a download reports as it goes (a progress bar, or occasional log lines)."""

    def start(self, name: str, total: int | None, completed: int) -> None:
        """A transfer of ``name`` begins (or resumes) with ``completed`` of ``total`` bytes."""

    def advance(self, count: int) -> None:
        """``count`` more bytes arrived."""

    def finish(self) -> None:
        """The transfer ended (done or not)."""


class LineProgress:
    """Progress as plain lines: at the start, every 10 % or ``every_s`` seconds, at the end."""

    def __init__(self, write: Callable[[str], None], every_s: float = 10.0) -> None:
        self.write = write
        self.every_s = every_s
        self._name = ""
        self._total: int | None = None
        self._done = 0
        self._shown_at = 0.0
        self._shown_tenth = -1
        self._started = 0.0

    def start(self, name: str, total: int | None, completed: int) -> None:
        """Print where the transfer begins."""
        self._name, self._total, self._done = name, total, completed
        self._started = self._shown_at = time.monotonic()
        self._shown_tenth = self._tenth()
        whole = f" of {human_bytes(total)}" if total else ""
        begun = f", resuming at {human_bytes(completed)}" if completed else ""
        self.write(f"downloading {name}{whole}{begun}")

    def _tenth(self) -> int:
        return self._done * 10 // self._total if self._total else -1

    def advance(self, count: int) -> None:
        """Print a line when another tenth is done or ``every_s`` passed."""
        self._done += count
        now = time.monotonic()
        tenth = self._tenth()
        if tenth > self._shown_tenth or now - self._shown_at >= self.every_s:
            self._shown_tenth, self._shown_at = tenth, now
            share = f" ({self._done * 100 // self._total} %)" if self._total else ""
            self.write(f"  {self._name}: {human_bytes(self._done)}{share}")

    def finish(self) -> None:
        """Nothing more to say: the caller reports the outcome."""


class _NoProgress:
    def start(self, name: str, total: int | None, completed: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def finish(self) -> None:
        pass


# -- pulling --------------------------------------------------------------------------------


def pull(
    entry: ModelEntry,
    models: ModelsSettings,
    retry: RetrySettings | None = None,
    progress: TransferProgress | None = None,
) -> Path:
    """Fetch ``entry`` (a hub repository or a URL) and return its local path.

    Raises ``DownloadFailed`` (one line) when it cannot be fetched, and
    ``ConfigurationError`` for an entry that is not pullable.
    """
    if entry.kind == "url":
        return download_url(
            entry.reference,
            Path(entry.where),
            sha256=entry.sha256,
            token=models.download_token,
            retry=retry or RetrySettings(),
            progress=progress,
        )
    if entry.kind == "hub":
        return pull_hub(
            entry.reference,
            revision=entry.revision,
            purpose=entry.purpose,
            token=models.hf_token,
            prefer_fp16=entry.prefer_fp16,
            setting=entry.setting,
        )
    raise ConfigurationError(
        f"{entry.setting or entry.what}={entry.shown} is a {entry.kind} model: nothing to pull"
    )


def fast_transfer() -> str:
    """Turn on the fastest transfer huggingface_hub offers here; return its name.

    huggingface_hub 1.x and later use hf-xet by themselves (``hf_transfer`` is gone);
    older versions use ``hf_transfer`` when it is installed and switched on.
    """
    from huggingface_hub import constants

    if hasattr(constants, "HF_HUB_ENABLE_HF_TRANSFER"):
        if importlib.util.find_spec("hf_transfer") is not None:
            constants.HF_HUB_ENABLE_HF_TRANSFER = True
            return "hf_transfer"
        return "http"
    return "hf_xet" if importlib.util.find_spec("hf_xet") is not None else "http"


def pull_hub(
    repo_id: str,
    *,
    revision: str | None,
    purpose: Purpose,
    token: SecretStr | None,
    prefer_fp16: bool = True,
    setting: str = "",
) -> Path:
    """Download what ``purpose`` needs of ``repo_id`` into the Hugging Face cache.

    Lists the repository, picks the files (``select_hub_files``) and fetches them
    with ``snapshot_download`` (resumable; files already cached are skipped).
    Raises ``DownloadFailed`` with one line for a missing, gated or unreachable
    repository or revision.
    """
    if importlib.util.find_spec("huggingface_hub") is None:
        raise ConfigurationError(
            "fetching Hugging Face models needs huggingface_hub: pip install huggingface_hub"
        )
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    fast_transfer()
    secret = token.get_secret_value() if token is not None else None
    at = f" at revision {revision}" if revision else ""
    try:
        files = HfApi(token=secret).list_repo_files(repo_id, revision=revision)
        chosen = select_hub_files(purpose, files, prefer_fp16)
        if not chosen:
            raise DownloadFailed(
                f"{repo_id}{at} holds none of the files a {purpose} model needs "
                f"({', '.join(files[:5]) or 'no files'}); check {setting or 'the setting'}"
            )
        folder = snapshot_download(
            repo_id,
            revision=revision,
            token=secret,
            allow_patterns=[literal_pattern(name) for name in chosen],
        )
    except DownloadFailed:
        raise
    except GatedRepoError:
        raise DownloadFailed(
            f"{repo_id} is gated: accept its licence on huggingface.co and set "
            "HYPERLOCAL_MODELS__HF_TOKEN (or log in with `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise DownloadFailed(
            f"{repo_id} has no revision {revision!r}: fix "
            f"{setting.replace('__MODEL', '__REVISION') or 'the revision setting'}"
        ) from None
    except RepositoryNotFoundError:
        raise DownloadFailed(
            f"{repo_id} was not found on the Hugging Face hub (or is private: set "
            "HYPERLOCAL_MODELS__HF_TOKEN)"
        ) from None
    except OfflineModeIsEnabled:
        raise DownloadFailed(
            f"cannot fetch {repo_id}: HF_HUB_OFFLINE is set, so huggingface_hub stays offline"
        ) from None
    except HfHubHTTPError as exc:
        raise DownloadFailed(f"cannot fetch {repo_id}{at}: {_first_line(exc)}") from None
    except Exception as exc:  # the hub client's own transport errors differ by version
        raise DownloadFailed(
            f"cannot fetch {repo_id}{at}: {type(exc).__name__}: {_first_line(exc)}"
        ) from None
    return Path(folder)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:300]


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
    progress = progress or _NoProgress()
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
            raise _Passing(f"{type(exc).__name__}: {_first_line(exc)}") from None
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
                hasher = hashlib.sha256()
                hash_file(part, hasher)
                return hasher.hexdigest()
            _discard_part(dest)
            raise _Passing("the server refused to resume the partial file; starting over")
        _check_status(status, shown, token)
        if status == 200 and "text/html" in response.headers.get("content-type", ""):
            raise DownloadFailed(
                f"{shown} answered with a web page, not a file (a login page? set "
                "HYPERLOCAL_MODELS__DOWNLOAD_TOKEN, or check the URL)"
            )
        hasher = hashlib.sha256()
        if status == 206:
            start, total = _content_range(response.headers.get("content-range"))
            if start != offset:
                _discard_part(dest)
                raise _Passing(f"the server resumed at byte {start}, not {offset}; starting over")
            hash_file(part, hasher)
            mode = "ab"
        else:  # 200: the whole file (the server ignored Range, or the file changed)
            if offset:
                log.info("%s: the server sent the whole file; starting over", dest.name)
            offset = 0
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
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
