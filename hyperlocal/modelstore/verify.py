"""Checking the files of a model against their recorded digests.

URL downloads against the sha256 setting or the ``.sha256`` record of the pull,
hub snapshots against their blob names (sha256 for LFS files, git blob sha1 for
others), local folders against a ``SHA256SUMS`` file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from hyperlocal.files import file_hasher, sha256_file
from hyperlocal.modelstore.entries import ModelEntry
from hyperlocal.modelstore.references import PULL_COMMAND, digest_record

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


class FileCheck(BaseModel):
    """One file checked against its recorded digest."""

    path: str
    status: Literal["ok", "mismatch", "missing", "no record"]
    detail: str = ""

    @property
    def bad(self) -> bool:
        """Whether this file failed (a wrong digest, or not there)."""
        return self.status in ("mismatch", "missing")


def git_blob_sha1(path: Path) -> str:
    """Return the git blob id of a file (sha1 of ``blob <size>\\0`` and the content)."""
    prefix = f"blob {path.stat().st_size}\0".encode()
    return str(file_hasher(path, "sha1", prefix).hexdigest())


def read_sums(file: Path) -> dict[str, str]:
    """Read a sha256sum-format file: ``<hex>  <name>`` per line (``*`` for binary mode)."""
    sums: dict[str, str] = {}
    for line in file.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([0-9a-fA-F]{64})\s+\*?(.+)$", line.strip())
        if match:
            sums[match.group(2).strip()] = match.group(1).lower()
    return sums


def verify(entry: ModelEntry) -> list[FileCheck]:
    """Check the files of a present entry against their recorded digests.

    URL downloads: the sha256 from settings, else the ``.sha256`` record of the
    pull. Hub snapshots: each file's blob, whose name is its sha256 (LFS files)
    or its git blob sha1 (other files). Local folders: a ``SHA256SUMS`` file at
    their top, when there is one; a local file: ``<file>.sha256`` next to it.
    A missing entry is one "missing" check; a served one has no checks.
    """
    if entry.kind == "served":
        return []
    where = Path(entry.where)
    if not entry.present:
        return [FileCheck(path=str(where), status="missing", detail=f"run `{PULL_COMMAND}`")]
    if entry.kind == "hub":
        return _verify_snapshot(where)
    if where.is_dir():
        sums = where / "SHA256SUMS"
        if not sums.is_file():
            return [FileCheck(path=str(where), status="no record", detail="no SHA256SUMS file")]
        return [_check_digest(where / name, digest) for name, digest in read_sums(sums).items()]
    expected = entry.sha256
    source = "settings"
    if expected is None:
        record = digest_record(where)
        if not record.is_file():
            return [FileCheck(path=str(where), status="no record", detail=f"no {record.name}")]
        expected = next(iter(read_sums(record).values()), None)
        source = record.name
        if expected is None:
            return [FileCheck(path=str(where), status="no record", detail=f"{record.name} empty")]
    check = _check_digest(where, expected)
    if check.status == "mismatch":
        check.detail += f" (recorded in {source})"
    return [check]


def _check_digest(path: Path, expected: str) -> FileCheck:
    if not path.is_file():
        return FileCheck(path=str(path), status="missing", detail="listed but not there")
    got = sha256_file(path)
    if got != expected:
        return FileCheck(
            path=str(path), status="mismatch", detail=f"sha256 expected {expected}, got {got}"
        )
    return FileCheck(path=str(path), status="ok")


def _verify_snapshot(snapshot: Path) -> list[FileCheck]:
    checks: list[FileCheck] = []
    for file in sorted(snapshot.rglob("*")):
        if file.is_dir():
            continue
        if not file.is_symlink():
            checks.append(FileCheck(path=str(file), status="no record", detail="not a blob link"))
            continue
        blob = file.resolve()
        if not blob.is_file():
            checks.append(FileCheck(path=str(file), status="missing", detail=f"no blob {blob}"))
            continue
        name = blob.name
        if _HEX64.match(name):
            got, kind = sha256_file(blob), "sha256"
        elif _HEX40.match(name):
            got, kind = git_blob_sha1(blob), "git sha1"
        else:
            checks.append(FileCheck(path=str(file), status="no record", detail="blob not named"))
            continue
        if got != name:
            detail = f"{kind} expected {name}, got {got}"
            checks.append(FileCheck(path=str(file), status="mismatch", detail=detail))
        else:
            checks.append(FileCheck(path=str(file), status="ok"))
    return checks
