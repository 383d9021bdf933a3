"""Files: written so that a crash never leaves a half-written one, and their digests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any


def _default_mode() -> int:
    # mkstemp creates files readable by the owner only; give the final file the
    # mode a plain open() would (0o666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# Read once at import: os.umask can only be read by setting it, which is not
# safe while other threads create files.
_FILE_MODE = _default_mode()


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Readers see either the old file or the complete new one. Raises ``OSError``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _FILE_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return path


def file_hasher(path: Path, algorithm: str = "sha256", prefix: bytes = b"") -> Any:
    """Return a hashlib object fed with ``prefix`` and then the content of ``path``.

    Read with ``hashlib.file_digest`` (large files in chunks, without the GIL); the
    caller may go on feeding it (a resumed download). Raises ``OSError``.
    """

    def start() -> Any:
        hasher = hashlib.new(algorithm, usedforsecurity=False)
        hasher.update(prefix)
        return hasher

    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, start)


def sha256_file(path: Path) -> str:
    """Return the sha256 hex digest of a file's content; raises ``OSError``."""
    return str(file_hasher(path).hexdigest())
