"""Painting the pictures that threads ask for at the same time as one batch.

The variants of a brief run in parallel threads, and each asks for its own
picture. On a GPU one batched call paints N pictures in little more than the
time of one, so requests that can share a call (same size, steps, guidance)
are gathered: the first caller becomes the runner, waits a moment for
compatible requests to join, runs them together and hands each caller its
result; requests that arrive while the device is busy form the next batch.
Calls are serialized: one batch at a time per batcher, and each holds the
device's lock, shared with every other model on that device.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")


@dataclass(eq=False)
class _Pending(Generic[Request, Result]):
    request: Request
    key: Hashable
    done: bool = False
    result: Result | None = None
    error: BaseException | None = None
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher(Generic[Request, Result]):
    """Gathers concurrent requests with equal keys into ``run`` calls of at most ``max_batch``."""

    def __init__(
        self,
        run: Callable[[Sequence[Request]], Sequence[Result]],
        key: Callable[[Request], Hashable],
        max_batch: int,
        wait_s: float = 0.05,
        device: AbstractContextManager[object] | None = None,
    ) -> None:
        self._run = run
        self._key = key
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._device: AbstractContextManager[object] = device or nullcontext()
        self._queue: list[_Pending[Request, Result]] = []
        self._running = False
        self._changed = threading.Condition()
        # Callers inside submit, queued or still preparing: who a batch may wait for.
        self._coming = 0
        #: The size of every batch run so far (tests and benchmarks read it).
        self.batch_sizes: list[int] = []

    def submit(self, request: Request, prepare: Callable[[], object] | None = None) -> Result:
        """Return ``run``'s result for ``request``, painted alone or with others.

        ``prepare`` (loading the model, say) runs first, outside the queue: the
        callers it holds up still count as coming, so the batch waits for them.
        Raises whatever ``prepare`` or ``run`` raised for this request's batch.
        """
        item: _Pending[Request, Result] = _Pending(request, self._key(request))
        with self._changed:
            self._coming += 1
        try:
            if prepare is not None:
                prepare()
            with self._changed:
                item.arrived = time.monotonic()
                self._queue.append(item)
                self._changed.notify_all()
                while not item.done:
                    if self._running:
                        self._changed.wait()
                        continue
                    self._running = True
                    self._changed.release()
                    try:
                        # The batch is gathered once the device is free, so requests that
                        # came while it was busy (with anything) share the next call.
                        with self._device:
                            with self._changed:
                                batch = self._gather()
                            self._execute(batch)
                    finally:
                        self._changed.acquire()
                        self._running = False
                        self._changed.notify_all()
        finally:
            with self._changed:
                self._coming -= 1
                self._changed.notify_all()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    @property
    def queued(self) -> int:
        """How many requests wait for a batch now."""
        with self._changed:
            return len(self._queue)

    def _gather(self) -> list[_Pending[Request, Result]]:
        """Take the oldest request and those that share its key (called with the lock held).

        Waits at most ``wait_s`` after the oldest arrived, and only while callers
        that are still coming could fill the batch: a lone caller never waits.
        """
        first = self._queue[0]
        deadline = first.arrived + self.wait_s
        while True:
            now = time.monotonic()
            same = sum(p.key == first.key for p in self._queue)
            waiting = len(self._queue)
            expected = min(self.max_batch, same + self._coming - waiting)
            if same >= expected or now >= deadline:
                break
            self._changed.wait(deadline - now)
        batch = [p for p in self._queue if p.key == first.key][: self.max_batch]
        for pending in batch:
            self._queue.remove(pending)
        return batch

    def _execute(self, batch: list[_Pending[Request, Result]]) -> None:
        self.batch_sizes.append(len(batch))
        try:
            results = self._run([p.request for p in batch])
        except BaseException as exc:  # every caller of the batch sees its failure
            for pending in batch:
                pending.error = exc
        else:
            for pending, result in zip(batch, results, strict=True):
                pending.result = result
        finally:
            for pending in batch:
                pending.done = True
