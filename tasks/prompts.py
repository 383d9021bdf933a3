"""Art direction and CLIP-aware prompt fitting."""

from __future__ import annotations

from prefect import task

from backends import registry
from backends.base import ArtRequest
from hyperlocal.clip_tokens import CLIP_WINDOW, clip_counter, fit_phrases, join_phrases, lead_order
from hyperlocal.formats import Zone
from hyperlocal.models import FittedPrompt, ImagePrompt, PromptPhrase
from hyperlocal.settings import Settings
from tasks.caching import PURE_STEP_POLICY, backend_step_policy
from tasks.log import step_logger


@task(name="direct_art", cache_policy=backend_step_policy("text"), persist_result=True)
def direct_art(request: ArtRequest, settings: Settings) -> ImagePrompt:
    """Return the art direction for one variant from the text backend.

    Raises the backend's faults: ``PassingFault`` is retried by the task.
    """
    backend = registry.text_backend(settings)
    prompt = backend.direct_art(request)
    step_logger().info(
        "variant %d art direction: %d phrases from %s",
        request.variant,
        len(prompt.phrases),
        backend.identity.label,
    )
    return prompt


def composition_phrase(zone: Zone) -> PromptPhrase:
    """Return the phrase that keeps the layout's text zone calm in the picture."""
    return PromptPhrase(
        text=f"calm uncluttered empty space in {zone.describe()} of the frame",
        role="composition",
        priority=90,
    )


@task(name="fit_prompt", cache_policy=PURE_STEP_POLICY, persist_result=True)
def fit_prompt(prompt: ImagePrompt, zone: Zone, limit: int = CLIP_WINDOW) -> FittedPrompt:
    """Return the prompt for one format, fitted to CLIP's window, with what was dropped.

    Subject and style lead (the first chunk feeds SDXL's pooled embedding); the
    composition phrase for the format's text zone is added; the lowest-priority
    phrases are dropped whole until the prompt and the negative prompt fit.
    """
    counter = clip_counter()
    phrases = lead_order([*prompt.phrases, composition_phrase(zone)])
    kept, dropped = fit_phrases(phrases, limit, counter)
    kept_negative, dropped_negative = fit_phrases(prompt.negative, limit, counter)
    fitted = FittedPrompt(
        prompt=join_phrases(kept),
        negative_prompt=join_phrases(kept_negative),
        token_count=counter.count(join_phrases(kept)),
        negative_token_count=counter.count(join_phrases(kept_negative)),
        original_token_count=counter.count(join_phrases(phrases)),
        original_negative_token_count=counter.count(join_phrases(prompt.negative)),
        limit=limit,
        dropped=dropped,
        dropped_negative=dropped_negative,
        zone=zone.describe(),
    )
    if dropped or dropped_negative:
        step_logger().warning(
            "prompt over %d CLIP tokens (%d): dropped %s",
            limit,
            fitted.original_token_count,
            "; ".join(repr(p.text) for p in [*dropped, *dropped_negative]),
        )
    return fitted
