"""Cache policies: a step's key is its inputs, its source and its backend's identity.

Prefect's default policy includes the run id and so never hits across runs; the
policies here hit in a new process, and change exactly when an input, the
task's code or the model behind it changes (DESIGN.md, "Caching"). Settings are
passed to tasks so they can build their backend (in any process, with any task
runner) but are never hashed whole: only the backend identity they lead to is.

Every cached step is SERIALIZABLE across processes: a step takes a lock on its
cache key before looking the key up, so when two runs reach the same step at
once, one computes it and the other waits, then reads its result. The locks are
files in ``<cache_dir>/locks`` (next to ``results``), held with ``flock``: runs
that share a cache folder share its locks whatever Prefect server each one
talks to (the command line starts a temporary server per process).
"""

from __future__ import annotations

import asyncio
import contextvars
import fcntl
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.context import TaskRunContext
from prefect.locking.protocol import LockManager
from prefect.results import ResultRecord
from prefect.transactions import IsolationLevel
from prefect.utilities.hashing import hash_objects

from backends import registry
from backends.registry import Role
from hyperlocal.errors import first_line
from hyperlocal.settings import Settings
from tasks.log import step_logger

#: The folder of the result files, in the cache folder.
RESULTS_FOLDER = "results"
#: The folder of the lock files, next to the results folder in the cache folder.
LOCKS_FOLDER = "locks"
#: How often a waiting step looks at a lock held by another run.
_POLL_S = 0.05

# Locks this process holds: lock file -> (holder, open descriptor). Kept at module
# level so the lock manager itself stays stateless: Prefect deep-copies policies
# and Dask pickles them, and copies must share what this process holds.
_held: dict[Path, tuple[str, int]] = {}
_held_guard = threading.Lock()


def _result_folder() -> Path:
    """Return the running task's result folder.

    Raises ``RuntimeError`` outside a task run or when results are not in a local folder.
    """
    context = TaskRunContext.get()
    storage = context.result_store.result_storage if context is not None else None
    basepath = getattr(storage, "basepath", None)
    if not basepath:
        raise RuntimeError("cache locks need a task run whose results persist in a local folder")
    return Path(basepath).expanduser().resolve()


def _lock_folder() -> Path:
    """Return the locks folder next to the running task's result folder (made if missing)."""
    folder = _result_folder().parent / LOCKS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


#: Set by a run to a list that collects the cached results found damaged and
#: recomputed (file names), for its manifest; threads started with a copy of the
#: run's context (variants, task runs) add to the same list.
damaged_results: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "damaged_results", default=None
)


def discard_if_damaged(result_file: Path) -> bool:
    """Delete ``result_file`` when it exists but does not decode; log one warning line.

    Return whether it was damaged. Call it holding the key's lock, so no run is
    writing the file meanwhile. Raises ``OSError`` when it cannot be deleted.
    """
    try:
        content = result_file.read_bytes()
    except FileNotFoundError:
        return False
    try:
        # Decodes the whole record, result included, as Prefect's lookup does.
        ResultRecord.deserialize(content)
    except Exception as exc:
        detail = first_line(exc, default="", limit=100)
        reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        step_logger().warning(
            "cached result %s is damaged (%d bytes; %s): computing the step again",
            result_file.name,
            len(content),
            reason,
        )
        # Prefect would overwrite it after the step, but only if the step succeeds.
        result_file.unlink(missing_ok=True)
        found = damaged_results.get()
        if found is not None:
            found.append(result_file.name)
        return True
    return False


def _try_flock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@dataclass(frozen=True)
class CacheLockManager(LockManager):
    """Locks on cache keys that hold across processes: ``flock`` on ``<cache_dir>/locks/<key>``.

    Prefect's ``FileSystemLockManager`` fixes its folder when built (the policies
    here are built at import, before settings name a cache folder), lets another
    process read a lock file between its creation and its first byte (a JSON
    error in the waiting run), and keeps a crashed run's lock file for ever
    (every later run waits). An ``flock`` is taken and released by the kernel,
    and released when its process dies, so none of that can happen.
    ``hold_timeout`` is ignored for the same reason. Lock files are never
    deleted: deleting one lets a waiter lock the old file while a newcomer
    locks a new one.
    """

    def _path(self, key: str) -> Path:
        return _lock_folder() / f"{key}.lock"

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take the lock for ``holder``; False after ``acquire_timeout`` s. Raises ``OSError``."""
        path = self._path(key)
        with _held_guard:
            current = _held.get(path)
        if current is not None and current[0] == holder:
            return True
        # A descriptor of its own per attempt: flock excludes other descriptors,
        # so two threads of this process exclude each other too.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        while not _try_flock(fd, fcntl.LOCK_EX):
            if deadline is not None and time.monotonic() >= deadline:
                os.close(fd)
                return False
            time.sleep(_POLL_S)
        with _held_guard:
            _held[path] = (holder, fd)
        try:
            # Prefect looks the key up right after this, under the lock. A file it
            # cannot decode counts as missing there and is recomputed, silently:
            # this is the one place that sees the key, holding its lock, first.
            discard_if_damaged(_result_folder() / key)
        except BaseException:
            # Prefect never releases a lock whose acquiring raised: do it here, or
            # the key stays locked (and the descriptor open) until the process ends.
            self.release_lock(key, holder)
            raise
        return True

    async def aacquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """``acquire_lock`` in a worker thread."""
        return await asyncio.to_thread(
            self.acquire_lock, key, holder, acquire_timeout, hold_timeout
        )

    def release_lock(self, key: str, holder: str) -> None:
        """Release ``holder``'s lock; raises ``ValueError`` when ``holder`` does not hold it."""
        path = self._path(key)
        with _held_guard:
            current = _held.get(path)
            if current is None or current[0] != holder:
                raise ValueError(f"No lock held by {holder} for transaction with key {key}")
            del _held[path]
        fcntl.flock(current[1], fcntl.LOCK_UN)
        os.close(current[1])

    def is_locked(self, key: str) -> bool:
        """Return whether any run (this process or another) holds the lock on ``key``."""
        path = self._path(key)
        with _held_guard:
            if path in _held:
                return True
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            if _try_flock(fd, fcntl.LOCK_SH):
                fcntl.flock(fd, fcntl.LOCK_UN)
                return False
            return True
        finally:
            os.close(fd)

    def is_lock_holder(self, key: str, holder: str) -> bool:
        """Return whether ``holder`` holds the lock on ``key`` in this process."""
        path = self._path(key)
        with _held_guard:
            current = _held.get(path)
        return current is not None and current[0] == holder

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Wait until ``key`` is free; False after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_locked(key):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """``wait_for_lock`` without blocking the event loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_locked(key):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_S)
        return True


def serializable(policy: CachePolicy) -> CachePolicy:
    """Return ``policy`` with serializable isolation under the cache folder's file locks."""
    return policy.configure(
        isolation_level=IsolationLevel.SERIALIZABLE, lock_manager=CacheLockManager()
    )


@dataclass
class BackendIdentityPolicy(CachePolicy):
    """Keys on the identity of the backend that ``settings`` selects for ``role``."""

    role: Role = "text"

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """Return a hash of the backend identity; raises ``ConfigurationError`` for a bad kind."""
        settings = inputs.get("settings")
        if not isinstance(settings, Settings):
            return None
        identity = registry.backend_for(self.role, settings).identity
        return hash_objects(identity.model_dump(mode="json"), raise_on_failure=True)


def backend_step_policy(role: Role) -> CachePolicy:
    """Return the (serializable) policy of a step served by the ``role`` backend."""
    return serializable((INPUTS - "settings") + TASK_SOURCE + BackendIdentityPolicy(role=role))


#: The policy of a step with no backend: its inputs and its code (serializable).
PURE_STEP_POLICY: CachePolicy = serializable(INPUTS + TASK_SOURCE)


def result_storage(settings: Settings) -> Path:
    """Return the storage where step results persist between runs (folder created if missing).

    Results are files in ``<cache_dir>/results``; the locks of serializable steps
    live in ``<cache_dir>/locks``. Raises ``OSError`` when the folder cannot be made.
    """
    folder = (settings.cache_dir / RESULTS_FOLDER).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    (folder.parent / LOCKS_FOLDER).mkdir(exist_ok=True)
    return folder
