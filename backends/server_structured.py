"""Structured output on OpenAI-compatible servers: the dialects, which to try, and a truthful probe.

Servers take a JSON schema in different shapes, and an HTTP 200 proves nothing:

- ``json_schema``: ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``
  (vLLM, vllm-mlx, LM Studio, OpenAI, Ollama's /v1);
- ``json_object_schema``: ``{"type": "json_object", "schema": {...}}`` (llama.cpp's
  server as llama-cpp-python serves it);
- none: the schema travels in the prompt, and the answer is extracted, validated
  and re-asked (``backends.structured_output``).

mlx_lm.server accepts ``response_format`` and ignores it (the answer is prose);
vllm-mlx and mlx_vlm.server answer HTTP 500 ("No Metal back-end") on a CPU. So the
probe asks a tiny schema (one required enum property, nothing else allowed) with a
question that never mentions JSON, and checks that the *answer* conforms: a
conforming answer means the server constrains its output ("honoured"), any other
answer means it accepted the schema and ignored it ("ignored"), and HTTP 400/422
naming the format or any HTTP 500 means "refused (HTTP 500: <message>)". A server
that cannot be reached raises its passing fault and no verdict is kept.

``ProbeMemory`` keeps each (public URL, model)'s result for the life of the process,
and runs the probe once even when concurrent variants ask at the same moment.
Nothing here speaks HTTP: the backend hands ``probe`` a ``send`` function.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hyperlocal.prompts.llm_tokens import ChatMessage

#: The ways of sending a schema, by name.
Dialect = Literal["json_schema", "json_object_schema"]
JSON_SCHEMA: Dialect = "json_schema"
JSON_OBJECT_SCHEMA: Dialect = "json_object_schema"

#: What each server preset (``TextSettings.provider``) takes, in the order to try.
#: mlx_lm.server and vllm-mlx on a CPU honour none today; the probe finds that out and
#: costs one tiny request, so a later version that does honour schemas is used at once.
PRESET_DIALECTS: dict[str, tuple[Dialect, ...]] = {
    "vllm_mlx": (JSON_SCHEMA,),
    "mlx_lm": (JSON_SCHEMA,),
    "ollama": (JSON_SCHEMA,),
    "lmstudio": (JSON_SCHEMA,),
    "llamacpp": (JSON_OBJECT_SCHEMA, JSON_SCHEMA),
    "vllm": (JSON_SCHEMA,),
    "openai": (JSON_SCHEMA,),
}
#: A server of no known preset: the common form first, then llama.cpp's.
UNKNOWN_SERVER: tuple[Dialect, ...] = (JSON_SCHEMA, JSON_OBJECT_SCHEMA)

#: ``ModelWork.structured_output`` for each honoured dialect, and for none.
DIALECT_LABELS: dict[Dialect, str] = {
    JSON_SCHEMA: "server json_schema",
    JSON_OBJECT_SCHEMA: "server json_object schema",
}
PROMPT_ONLY = "prompt only (server ignores schemas)"
_SHORT_NAMES: dict[Dialect, str] = {
    JSON_SCHEMA: "json_schema",
    JSON_OBJECT_SCHEMA: "json_object schema",
}

#: The probe's question: a model that is not constrained answers it in words.
PROBE_PROMPT = "Is the sky blue on a clear day? Reply yes or no."
PROBE_NAME = "probe"
PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["answer"],
    "additionalProperties": False,
}
#: Room for ``{"answer": "yes"}`` and some whitespace, not for an essay.
PROBE_MAX_TOKENS = 32

#: Words in a 400/422 error that show the server refused the format itself.
FORMAT_WORDS = ("response_format", "json_schema", "json_object", "schema", "grammar", "metal")


def dialects_for(provider: str | None) -> tuple[Dialect, ...]:
    """Return the dialects to try, in order, for a server preset (None: unknown server)."""
    if provider is None:
        return UNKNOWN_SERVER
    return PRESET_DIALECTS.get(provider, UNKNOWN_SERVER)


def response_format(dialect: Dialect, name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Return the ``response_format`` request field that asks ``schema`` in ``dialect``."""
    if dialect == JSON_OBJECT_SCHEMA:
        return {"type": "json_object", "schema": schema}
    # strict=False: OpenAI's strict mode rejects pydantic schemas (optional fields, limits).
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": False}}


def names_the_format(message: str) -> bool:
    """Return whether an error message is about ``response_format`` (not the model, the key)."""
    lowered = message.lower()
    return any(word in lowered for word in FORMAT_WORDS)


def conforms_to_probe(text: str) -> bool:
    """Return whether ``text`` is, as a whole, one object that the probe schema allows."""
    try:
        value = json.loads(text.strip())
    except ValueError:
        return False
    return (
        isinstance(value, dict)
        and set(value) == {"answer"}
        and value["answer"] in PROBE_SCHEMA["properties"]["answer"]["enum"]
    )


@dataclass(frozen=True)
class ProbeReply:
    """What the server did with one probe request: answered ``text``, or refused it."""

    text: str = ""
    refused: str | None = None  # e.g. "HTTP 500: No Metal back-end"


#: Sends the probe question with the given ``response_format``; returns the server's reply.
#: Raises the request's faults for what is no verdict (server down, key refused, busy).
ProbeSend = Callable[[dict[str, Any]], ProbeReply]


@dataclass(frozen=True)
class Trial:
    """One dialect tried: ``honoured``, ``ignored`` or ``refused (...)``."""

    dialect: Dialect
    outcome: str

    def describe(self) -> str:
        """Return e.g. ``json_schema ignored``."""
        return f"{_SHORT_NAMES[self.dialect]} {self.outcome}"


@dataclass(frozen=True)
class ProbeResult:
    """What a server does with schemas: the dialect it honours (None: none) and every trial."""

    dialect: Dialect | None
    trials: tuple[Trial, ...] = field(default_factory=tuple)

    @property
    def constrained(self) -> bool:
        """Whether the server holds its answers to a schema (the prompt may omit it)."""
        return self.dialect is not None

    @property
    def label(self) -> str:
        """``server json_schema``, ``server json_object schema`` or the prompt-only label."""
        return DIALECT_LABELS[self.dialect] if self.dialect is not None else PROMPT_ONLY

    def summary(self) -> str:
        """Return every trial in one short line: ``json_schema ignored; ...``."""
        return "; ".join(trial.describe() for trial in self.trials) or "no dialect tried"

    def note(self) -> str:
        """Return the manifest's note: ``structured-output probe: ...``."""
        return f"structured-output probe: {self.summary()}"

    def refused_later(self, reason: str) -> ProbeResult:
        """Return this result after the honoured dialect refused a real schema (prompt only)."""
        if self.dialect is None:
            return self
        trial = Trial(self.dialect, f"refused a full schema ({reason})")
        return ProbeResult(None, (*self.trials, trial))


def probe(send: ProbeSend, dialects: Iterable[Dialect]) -> ProbeResult:
    """Try each dialect in order until one is honoured; return what each trial showed.

    Raises what ``send`` raises (nothing is concluded from a server that is down).
    """
    trials: list[Trial] = []
    for dialect in dialects:
        reply = send(response_format(dialect, PROBE_NAME, PROBE_SCHEMA))
        if reply.refused is not None:
            trials.append(Trial(dialect, f"refused ({reply.refused})"))
        elif conforms_to_probe(reply.text):
            trials.append(Trial(dialect, "honoured"))
            return ProbeResult(dialect, tuple(trials))
        else:
            trials.append(Trial(dialect, "ignored"))
    return ProbeResult(None, tuple(trials))


ProbeKey = tuple[str, str]


class ProbeMemory:
    """Probe results per (public URL, model), for the process; thread-safe.

    ``result(key, run)`` returns the remembered result or runs ``run`` once: callers
    arriving while it runs wait for it instead of probing again. A ``run`` that
    raises leaves nothing behind, so the next caller probes afresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: dict[ProbeKey, ProbeResult] = {}
        self._probing: dict[ProbeKey, threading.Lock] = {}

    def get(self, key: ProbeKey) -> ProbeResult | None:
        """Return the remembered result for ``key``, or None when not probed yet."""
        with self._lock:
            return self._results.get(key)

    def remember(self, key: ProbeKey, result: ProbeResult) -> None:
        """Remember ``result`` for ``key`` (replacing what was there)."""
        with self._lock:
            self._results[key] = result

    def result(self, key: ProbeKey, run: Callable[[], ProbeResult]) -> tuple[ProbeResult, bool]:
        """Return ``key``'s result and whether this call ran the probe."""
        with self._lock:
            found = self._results.get(key)
            if found is not None:
                return found, False
            gate = self._probing.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                found = self._results.get(key)
            if found is not None:
                return found, False
            result = run()
            with self._lock:
                self._results[key] = result
            return result, True

    def clear(self) -> None:
        """Forget every result (tests: loopback ports get reused)."""
        with self._lock:
            self._results.clear()
            self._probing.clear()

    def keys(self) -> Sequence[ProbeKey]:
        """Return the keys probed so far."""
        with self._lock:
            return list(self._results)


#: The process's probe results, shared by every text and vision backend.
PROBES = ProbeMemory()


#: What a prompt built for a constrained server lacks when the server turns out not to be.
SCHEMA_INSTRUCTIONS = (
    "Answer with one JSON object and nothing else, matching this JSON schema:\n{schema}"
)


def with_schema_instructions(
    messages: Sequence[ChatMessage], schema: dict[str, Any]
) -> list[ChatMessage]:
    """Return chat ``messages`` with the format instructions added to the first system message.

    For a prompt written for a server that constrains its answers (no schema in it)
    that must go, after all, to one that does not. A system message is put first when
    there is none.
    """
    instructions = SCHEMA_INSTRUCTIONS.format(schema=json.dumps(schema, separators=(",", ":")))
    result = list(messages)
    for index, message in enumerate(result):
        if message.role == "system":
            content = f"{message.content}\n{instructions}"
            result[index] = message.model_copy(update={"content": content})
            return result
    return [ChatMessage(role="system", content=instructions), *result]
