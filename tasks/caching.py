"""Cache policies: a step's key is its inputs, its source and its backend's identity.

Prefect's default policy includes the run id and so never hits across runs; the
policies here hit in a new process, and change exactly when an input, the
task's code or the model behind it changes (DESIGN.md, "Caching"). Settings are
passed to tasks so they can build their backend (in any process, with any task
runner) but are never hashed whole: only the backend identity they lead to is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects

from backends import registry
from backends.registry import Role
from hyperlocal.settings import Settings


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
    """Return the policy of a step served by the ``role`` backend."""
    return (INPUTS - "settings") + TASK_SOURCE + BackendIdentityPolicy(role=role)


#: The policy of a step with no backend: its inputs and its code.
PURE_STEP_POLICY: CachePolicy = INPUTS + TASK_SOURCE


def result_storage(settings: Settings) -> Path:
    """Return the folder where step results persist between runs (created if missing)."""
    folder = (settings.cache_dir / "results").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder
