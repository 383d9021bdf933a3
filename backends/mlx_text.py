"""mlx-lm in process: copy and art direction from a local MLX language model.

Runs on Apple Silicon (Metal) and on Linux with ``mlx[cpu]``. The model is
loaded once per process through ``backends.loaded_models`` and shared by every
task; generation is serialized per model. Prompts are counted with the model's
own tokenizer. Answers are generated under their JSON schema
(``backends.constrained_decoding``), so they always parse and validate and the
prompt need not paste the schema; they still go through the same validation
and fact checks as the server backends (``backends.structured_output``), and a
re-ask is only ever for content.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from backends.base import ArtRequest, CopyRequest, Health
from backends.chat_prompts import AskModel, PromptBudget, request_art, request_copy
from backends.constrained_decoding import JsonSchemaConstraint
from backends.loaded_models import LoadedModel, folder_size, shared_models
from backends.work_log import WorkLog
from hyperlocal.errors import (
    BackendNotAvailable,
    ConfigurationError,
    InvalidModelOutput,
    first_line,
)
from hyperlocal.models import BackendIdentity, FlyerCopy, ImagePrompt
from hyperlocal.modelstore import model_folder, model_name
from hyperlocal.prompts.llm_tokens import ChatMessage, FunctionCounter
from hyperlocal.settings import TextSettings

ATTEMPTS = 3
DEFAULT_TEMPERATURE = 0.7
#: How far apart the sampling seeds of two variants are (a prime, so runs never meet).
VARIANT_SEED_STRIDE = 7919
#: Tokens between progress reports of a growing answer.
PROGRESS_EVERY = 8
#: How answers are held to their schema here (the manifest and --check say it).
STRUCTURED_OUTPUT = "constrained decoding in process (llguidance)"


def _require_mlx_lm() -> None:
    """Raise ``BackendNotAvailable`` unless mlx-lm is installed; imports nothing.

    Building the backend must stay light: a run whose steps all come from the cache,
    or go to model workers, never imports mlx (seconds) just to name its backend.
    """
    if importlib.util.find_spec("mlx_lm") is None or importlib.util.find_spec("mlx") is None:
        raise BackendNotAvailable(
            "the mlx text backend needs mlx-lm (not installed): pip install 'hyperlocal[mlx]'"
        )


def _mlx_lm() -> Any:
    try:
        import mlx_lm
    except ImportError as exc:
        raise BackendNotAvailable(
            f"the mlx text backend needs mlx-lm ({exc.name} is missing): "
            "pip install 'hyperlocal[mlx]'"
        ) from None
    return mlx_lm


def model_revision(folder: Path) -> str:
    """Return a short hash of a model folder's config and weight file names and sizes."""
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:12]


class MlxTextBackend:
    """Writes copy and art direction with an mlx-lm model loaded in this process."""

    def __init__(
        self,
        folder: Path,
        *,
        temperature: float,
        top_p: float,
        seed: int,
        max_tokens: int,
        context_window: int,
        memory_budget_gb: float,
    ) -> None:
        self.folder = folder
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.max_tokens = max_tokens
        self.context_window = context_window
        self.memory_budget_gb = memory_budget_gb
        self._identity = BackendIdentity(
            role="text",
            kind="mlx",
            model=model_name(folder),
            revision=model_revision(folder),
            params={
                "temperature": temperature,
                "top_p": top_p,
                "seed": seed,
                "max_tokens": max_tokens,
            },
        )

    @classmethod
    def from_settings(cls, text: TextSettings, memory_budget_gb: float = 16.0) -> MlxTextBackend:
        """Build the backend from settings; raises ``ConfigurationError`` before any loading.

        ``text.model`` is a local mlx model folder (with ``config.json``) or a
        Hugging Face id already downloaded (``python -m flows.models pull``);
        models are never fetched here. Raises ``ModelMissing`` for one not downloaded.
        """
        _require_mlx_lm()
        if not text.model:
            raise ConfigurationError(
                "the mlx text backend needs a model folder: set HYPERLOCAL_TEXT__MODEL"
            )
        folder = model_folder(text.model, text.revision, "HYPERLOCAL_TEXT__MODEL", "mlx-lm")
        return cls(
            folder.resolve(),
            temperature=DEFAULT_TEMPERATURE if text.temperature is None else text.temperature,
            top_p=text.top_p,
            seed=text.seed,
            max_tokens=text.max_tokens,
            context_window=text.context_window,
            memory_budget_gb=memory_budget_gb,
        )

    @property
    def identity(self) -> BackendIdentity:
        """The model folder's name and revision, and the sampling settings."""
        return self._identity

    def _loaded(self) -> LoadedModel:
        mlx_lm = _mlx_lm()

        def load() -> Any:
            try:
                return mlx_lm.load(str(self.folder))
            except Exception as exc:  # mlx-lm raises many kinds for a broken folder
                raise ConfigurationError(
                    f"cannot load the mlx model in {self.folder}: {type(exc).__name__}: "
                    f"{first_line(exc, default='no detail')}"
                ) from None

        models = shared_models(self.memory_budget_gb)
        return models.get(f"mlx-lm:{self.folder}", load, folder_size(self.folder))

    def counter(self) -> FunctionCounter:
        """Return a token counter that uses this model's own tokenizer."""
        _model, tokenizer = self._loaded().value
        return FunctionCounter(f"tokenizer of {self.folder.name}", tokenizer.encode)

    def _generate(
        self,
        messages: list[ChatMessage],
        max_tokens: int,
        answer_type: type[BaseModel] | None = None,
        log: WorkLog | None = None,
        seed: int | None = None,
    ) -> str:
        """Return the model's answer, held to ``answer_type``'s JSON schema when given.

        Streams token by token (progress goes to ``log``). Raises ``InvalidModelOutput``
        for an empty answer or one cut off by ``max_tokens`` before its JSON ended.
        """
        import mlx.core as mx
        from mlx_lm.sample_utils import make_sampler

        loaded = self._loaded()
        model, tokenizer = loaded.value
        chat = [m.model_dump() for m in messages]
        prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        sampler = make_sampler(temp=self.temperature, top_p=self.top_p)
        constraint = (
            JsonSchemaConstraint(tokenizer, answer_type).logits_processor()
            if answer_type is not None
            else None
        )
        pieces: list[str] = []
        prompt_tokens = generated = reported = 0
        started = time.perf_counter()
        with loaded.lock:
            # The seed is set under the lock so each answer depends only on its prompt.
            mx.random.seed(self.seed if seed is None else seed)
            for response in _mlx_lm().stream_generate(
                model,
                tokenizer,
                prompt=prompt,
                max_tokens=max_tokens,
                sampler=sampler,
                logits_processors=[constraint] if constraint is not None else None,
            ):
                pieces.append(response.text)
                prompt_tokens, generated = response.prompt_tokens, response.generation_tokens
                if log is not None and generated >= reported + PROGRESS_EVERY:
                    reported = generated
                    log.tokens(generated)
        if log is not None:
            log.request(prompt_tokens, generated, time.perf_counter() - started)
        answer = "".join(pieces)
        if constraint is not None:
            constraint.raise_if_cut_off("HYPERLOCAL_TEXT__MAX_TOKENS")
        if not answer.strip():
            raise InvalidModelOutput("the model returned an empty answer")
        return answer

    def write_copy(self, request: CopyRequest, log: WorkLog | None = None) -> FlyerCopy:
        """Return the copy of one variant; raises ``InvalidModelOutput`` after 3 tries.

        The answer is generated under the draft's JSON schema, so it always parses;
        only content (a fact the brief does not back) is ever asked again.
        """
        asker = self._asker(log, request.variant)
        return request_copy(asker, request, self._budget(), self._started(log))

    def direct_art(self, request: ArtRequest, log: WorkLog | None = None) -> ImagePrompt:
        """Return the art direction of one variant; raises ``InvalidModelOutput`` after 3 tries."""
        asker = self._asker(log, request.variant)
        return request_art(asker, request, self._budget(), self._started(log))

    def _started(self, log: WorkLog | None) -> WorkLog | None:
        if log is not None:
            log.writer(self._identity.label)
            log.structured_output(STRUCTURED_OUTPUT)
        return log

    def _budget(self) -> PromptBudget:
        return PromptBudget(
            counter=self.counter(),
            context_window=self.context_window,
            max_output=self.max_tokens,
            attempts=ATTEMPTS,
            schema_in_prompt=False,
        )

    def _asker(self, log: WorkLog | None, variant: int) -> AskModel:
        # Each variant samples from its own seed (a small model given the same seed and
        # nearly the same prompt writes the same words for every variant), and each
        # answer of a conversation from the next one (a re-ask sampled like the first
        # answer tends to repeat its mistake). Still the same for every run.
        answers = itertools.count(VARIANT_SEED_STRIDE * (variant - 1))

        def ask(messages: list[ChatMessage], answer_type: type[BaseModel]) -> str:
            seed = self.seed + next(answers)
            return self._generate(messages, self.max_tokens, answer_type, log, seed)

        return ask

    def health(self) -> Health:
        """Load the model if needed and time a one-token answer; never raises."""
        started = time.perf_counter()
        try:
            self._generate([ChatMessage(role="user", content="Hi")], max_tokens=1)
        except ConfigurationError as exc:
            return Health(role="text", kind="mlx", ok=False, detail=str(exc))
        latency = time.perf_counter() - started
        return Health(
            role="text",
            kind="mlx",
            ok=True,
            detail=f"{self.folder.name} loaded in process; structured output: {STRUCTURED_OUTPUT}",
            models=[str(self.folder)],
            latency_s=latency,
        )
