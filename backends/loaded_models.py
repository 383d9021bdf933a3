"""Models loaded in this process, shared by every task and evicted under a memory budget.

Loading a model takes seconds to minutes and its weights take gigabytes, so a
model is loaded once per process and reused by every task that asks for it.
When a new model would pass the budget, the least recently used ones are let go
first. Each model comes with a lock: in-process generation is serialized per
model (MLX and one GPU do not run two generations on one model at once).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LoadedModel:
    """A loaded model, its size estimate and the lock that serializes its use."""

    key: str
    value: Any
    size_bytes: int
    lock: threading.Lock = field(default_factory=threading.Lock)


class LoadedModels:
    """A least-recently-used set of loaded models under a memory budget."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        #: How many times each key was loaded (tests and --check read it).
        self.loads: dict[str, int] = {}

    def get(self, key: str, load: Callable[[], Any], size_bytes: int) -> LoadedModel:
        """Return the model for ``key``, loading it with ``load()`` only the first time.

        Concurrent callers of one key wait for a single load. Raises whatever
        ``load`` raises (nothing is cached then).
        """
        with self._lock:
            found = self._models.get(key)
            if found is not None:
                self._models.move_to_end(key)
                return found
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                found = self._models.get(key)
                if found is not None:
                    return found
            started = time.perf_counter()
            value = load()
            seconds = time.perf_counter() - started
            entry = LoadedModel(key=key, value=value, size_bytes=size_bytes)
            with self._lock:
                self._evict_for(size_bytes)
                self._models[key] = entry
                self.loads[key] = self.loads.get(key, 0) + 1
            for listener in list(_load_listeners):
                listener(key, seconds)
            return entry

    def _evict_for(self, size_bytes: int) -> None:
        # A model larger than the whole budget is still loaded (alone): the user asked for it.
        while self._models and self.used_bytes() + size_bytes > self.budget_bytes:
            self._models.popitem(last=False)

    def used_bytes(self) -> int:
        """Return the estimated bytes of the models held now."""
        return sum(model.size_bytes for model in self._models.values())

    def keys(self) -> list[str]:
        """Return the keys of the models held, least recently used first."""
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        """Let every model go."""
        with self._lock:
            self._models.clear()


def folder_size(path: Path) -> int:
    """Return the bytes of the weight files in a model folder (an estimate of its memory)."""
    suffixes = {".safetensors", ".bin", ".gguf", ".npz"}
    return sum(p.stat().st_size for p in path.rglob("*") if p.suffix in suffixes and p.is_file())


#: Told ``(key, seconds)`` after every model load in this process (model workers print it).
LoadListener = Callable[[str, float], None]
_load_listeners: list[LoadListener] = []


def on_model_load(listener: LoadListener) -> None:
    """Call ``listener(key, seconds)`` after each model this process loads from now on."""
    _load_listeners.append(listener)


_shared: LoadedModels | None = None
_shared_lock = threading.Lock()


def shared_models(budget_gb: float) -> LoadedModels:
    """Return the process's loaded models (the budget follows the latest setting)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LoadedModels(int(budget_gb * 1024**3))
        _shared.budget_bytes = int(budget_gb * 1024**3)
        return _shared
