"""mlx-vlm in process: each picture checked by a local MLX vision model.

Runs on Apple Silicon (Metal) and on Linux with ``mlx[cpu]``. Like
``OpenAIVisionBackend``, every picture is first screened by ``HeuristicVision``
and one it rejects is reported as is, with no model call (and no model load).
A picture that passes is resized to the profile's pixel budget
(``vision_images``), asked the fixed questions of ``vision_verdict`` through the
model's own chat template; the answer is generated under the verdict's JSON
schema (``backends.constrained_decoding``), so it always parses, and is validated
by ``structured_output.ask_structured``.

The model is loaded once per process through ``backends.loaded_models`` (shared
with the mlx text backend's budget) and generation is serialized per model
under its lock: MLX runs one generation on one model at a time.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

from PIL import Image

from backends.base import CheckRequest, Health
from backends.constrained_decoding import JsonSchemaConstraint
from backends.heuristic_vision import HeuristicVision
from backends.loaded_models import LoadedModel, folder_size, shared_models
from backends.mlx_text import model_revision
from backends.source_revision import module_revision
from backends.structured_output import REASON_CHARS, ask_structured, one_line
from backends.vision_images import PATCH, VISION_PROFILES, VisionProfile, prepare_image
from backends.vision_verdict import VisionVerdict, to_report, verdict_messages
from backends.work_log import WorkLog
from hyperlocal.errors import (
    BackendNotAvailable,
    ConfigurationError,
    InvalidModelOutput,
    first_line,
)
from hyperlocal.models import BackendIdentity, QCReport
from hyperlocal.modelstore import model_folder, model_name
from hyperlocal.pictures import decode_picture
from hyperlocal.prompts.llm_tokens import ChatMessage
from hyperlocal.settings import VisionSettings

ATTEMPTS = 3
#: Greedy answers: the same picture gets the same verdict (and cache key) every time.
TEMPERATURE = 0.0
DEFAULT_SEED = 7
DEFAULT_MAX_TOKENS = 300
DEFAULT_PROFILE = "balanced"
#: How verdicts are held to their schema here (the manifest and --check say it).
STRUCTURED_OUTPUT = "constrained decoding in process (llguidance)"


def _require_mlx_vlm() -> None:
    """Raise ``BackendNotAvailable`` unless mlx-vlm is installed; imports nothing.

    Building the backend must stay light: a run whose steps all come from the cache,
    or go to model workers, never imports mlx (seconds) just to name its backend.
    """
    if importlib.util.find_spec("mlx_vlm") is None or importlib.util.find_spec("mlx") is None:
        raise BackendNotAvailable(
            "the mlx vision backend needs mlx-vlm (not installed): pip install 'hyperlocal[mlx]'"
        )


def _mlx_vlm() -> Any:
    try:
        import mlx_vlm
    except ImportError as exc:
        raise BackendNotAvailable(
            f"the mlx vision backend needs mlx-vlm ({exc.name} is missing): "
            "pip install 'hyperlocal[mlx]'"
        ) from None
    return mlx_vlm


def fold_conversation(conversation: list[ChatMessage]) -> list[dict[str, str]]:
    """Return ``ask_structured``'s conversation as a system and one user message.

    The picture belongs with the questions, and mlx-vlm attaches it to the last
    user message: so earlier answers and their rejections are folded into that
    one message as text instead of extra turns. Never raises.
    """
    system, question, *retries = conversation
    parts = [question.content]
    for message in retries:
        if message.role == "assistant":
            quoted = one_line(message.content, REASON_CHARS) or "(nothing)"
            parts.append(f"Your previous answer was: {quoted}")
        else:
            parts.append(message.content)
    return [
        {"role": system.role, "content": system.content},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


class MlxVisionBackend:
    """Checks pictures with an mlx-vlm model loaded in this process."""

    def __init__(
        self,
        folder: Path,
        *,
        profile: str = DEFAULT_PROFILE,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        seed: int = DEFAULT_SEED,
        memory_budget_gb: float = 16.0,
        attempts: int = ATTEMPTS,
        heuristic: HeuristicVision | None = None,
    ) -> None:
        """Prepare the backend for the model in ``folder``; nothing is loaded yet.

        Raises ``ConfigurationError`` for an unknown profile, ``OSError`` when the
        folder has no readable ``config.json`` (``from_settings`` checks that first).
        """
        if profile not in VISION_PROFILES:
            raise ConfigurationError(
                f"unknown vision profile {profile!r}: set HYPERLOCAL_VISION__PROFILE to one of "
                f"{', '.join(VISION_PROFILES)}"
            )
        self.folder = folder
        self.profile: VisionProfile = VISION_PROFILES[profile]
        self.max_tokens = max_tokens
        self.seed = seed
        self.memory_budget_gb = memory_budget_gb
        self.attempts = attempts
        self._heuristic = heuristic or HeuristicVision()
        self._identity = BackendIdentity(
            role="vision",
            kind="mlx",
            model=model_name(folder),
            revision=model_revision(folder),
            params={
                "profile": self.profile.name,
                "max_pixels": self.profile.max_pixels,
                "min_pixels": self.profile.min_pixels,
                "temperature": TEMPERATURE,
                "seed": seed,
                "max_tokens": max_tokens,
                # The questions are the prompt: editing them changes verdicts.
                "questions": module_revision("backends.vision_verdict"),
                # The screen decides which pictures reach the model at all.
                "heuristic": self._heuristic.identity.revision,
            },
        )

    @classmethod
    def from_settings(
        cls, vision: VisionSettings, memory_budget_gb: float = 16.0
    ) -> MlxVisionBackend:
        """Build the backend from ``settings.vision``; nothing is loaded yet.

        ``vision.model`` is a local mlx-vlm model folder (with ``config.json``) or a
        Hugging Face id already downloaded (``python -m flows.models pull``): models
        are never fetched here (``ModelMissing`` names the command). Raises
        ``BackendNotAvailable`` without mlx-vlm, ``ConfigurationError`` for a missing
        or wrong model setting or an unknown profile.
        """
        _require_mlx_vlm()
        if not vision.model:
            raise ConfigurationError(
                "the mlx vision backend needs a model folder: set HYPERLOCAL_VISION__MODEL"
            )
        folder = model_folder(vision.model, vision.revision, "HYPERLOCAL_VISION__MODEL", "mlx-vlm")
        return cls(
            folder.resolve(),
            profile=vision.profile,
            max_tokens=vision.max_tokens,
            memory_budget_gb=memory_budget_gb,
        )

    def __repr__(self) -> str:
        return f"MlxVisionBackend(model={self.folder.name!r}, profile={self.profile.name!r})"

    @property
    def key(self) -> str:
        """The key of this model in ``shared_models``."""
        return f"mlx-vlm:{self.folder}"

    @property
    def identity(self) -> BackendIdentity:
        """The model folder's name and revision, the picture budget and the questions."""
        return self._identity

    def _loaded(self) -> LoadedModel:
        mlx_vlm = _mlx_vlm()

        def load() -> Any:
            try:
                return mlx_vlm.load(str(self.folder))
            except Exception as exc:  # mlx-vlm and transformers raise many kinds
                detail = first_line(exc, default="no detail")
                raise ConfigurationError(
                    f"cannot load the mlx vision model in {self.folder}: "
                    f"{type(exc).__name__}: {detail}"
                ) from None

        models = shared_models(self.memory_budget_gb)
        return models.get(self.key, load, folder_size(self.folder))

    def _generate(
        self,
        messages: list[dict[str, str]],
        image: Image.Image,
        max_tokens: int,
        answer_type: type[VisionVerdict] | None = None,
        log: WorkLog | None = None,
    ) -> str:
        """Return the model's answer about ``image``, held to ``answer_type``'s schema if given.

        Raises ``InvalidModelOutput`` for an answer cut off before its JSON ended.
        """
        import mlx.core as mx
        from mlx_vlm.prompt_utils import apply_chat_template

        mlx_vlm = _mlx_vlm()
        loaded = self._loaded()
        model, processor = loaded.value
        prompt = apply_chat_template(processor, model.config, messages, num_images=1)
        constraint = (
            JsonSchemaConstraint(processor, answer_type).logits_processor()
            if answer_type is not None
            else None
        )
        started = time.perf_counter()
        with loaded.lock:
            # The seed is set under the lock so each answer depends only on its prompt.
            mx.random.seed(self.seed)
            result = mlx_vlm.generate(
                model,
                processor,
                prompt,
                image=[image],
                max_tokens=max_tokens,
                temperature=TEMPERATURE,
                verbose=False,
                logits_processors=[constraint] if constraint is not None else None,
            )
        if log is not None:
            log.request(
                int(getattr(result, "prompt_tokens", 0) or 0),
                int(getattr(result, "generation_tokens", 0) or 0),
                time.perf_counter() - started,
            )
        if constraint is not None:
            constraint.raise_if_cut_off("HYPERLOCAL_VISION__MAX_TOKENS")
        return str(result.text)

    def check(self, request: CheckRequest, log: WorkLog | None = None) -> QCReport:
        """Return the verdict on one picture: the heuristic screen's report if it fails, else
        the model's answers to the fixed questions after the screen's checks.

        Raises ``InvalidModelOutput`` after ``attempts`` unusable answers (one line),
        ``InvalidImage`` for bytes that do not decode, ``ConfigurationError`` when the
        model folder does not load, ``BackendNotAvailable`` without mlx-vlm.
        """
        screening = self._heuristic.check(request)
        if not screening.passed:
            # The screen is certain about what it rejects; loading a model would only cost time.
            return screening
        prepared = prepare_image(
            request.image.png,
            max_pixels=self.profile.max_pixels,
            min_pixels=self.profile.min_pixels,
        )
        picture = decode_picture(prepared, "RGB")
        messages = verdict_messages(request.subject, request.text_zone.describe())

        if log is not None:
            log.writer(self.identity.label)
            log.structured_output(STRUCTURED_OUTPUT)

        def ask(conversation: list[ChatMessage]) -> str:
            answer = self._generate(
                fold_conversation(conversation), picture, self.max_tokens, VisionVerdict, log
            )
            if not answer.strip():
                raise InvalidModelOutput("the model returned an empty answer")
            return answer

        verdict = ask_structured(ask, messages, VisionVerdict, attempts=self.attempts, log=log)
        return to_report(verdict, self.identity, request.min_score, screening.checks)

    def health(self) -> Health:
        """Load the model if needed and time a one-token answer about a tiny picture.

        Never raises: a missing mlx-vlm or a folder that does not load is ``ok=False``.
        """
        started = time.perf_counter()
        # Two patches a side: the smallest picture every Qwen-style processor accepts.
        tiny = Image.new("RGB", (2 * PATCH, 2 * PATCH), (128, 128, 128))
        try:
            self._generate([{"role": "user", "content": "Hi"}], tiny, max_tokens=1)
        except Exception as exc:  # health reports every failure instead of raising it
            detail = first_line(exc)
            return Health(role="vision", kind="mlx", ok=False, detail=detail)
        latency = time.perf_counter() - started
        return Health(
            role="vision",
            kind="mlx",
            ok=True,
            detail=(
                f"{self.folder.name} loaded in process; structured output: {STRUCTURED_OUTPUT}; "
                f"profile {self.profile.name} (at most {self.profile.max_pixels} pixels)"
            ),
            models=[str(self.folder)],
            latency_s=latency,
        )
