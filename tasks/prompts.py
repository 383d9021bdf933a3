"""Art direction and CLIP-aware prompt fitting."""

from __future__ import annotations

from prefect import task

from backends import registry
from backends.base import ArtRequest
from hyperlocal.layout.formats import Zone
from hyperlocal.models import DirectedArt, FittedPrompt, ImagePrompt, LongPrompts, PromptPhrase
from hyperlocal.prompts.fitting import fit_image_prompt
from hyperlocal.settings import Settings
from tasks.caching import backend_step_policy
from tasks.copywriting import describe_work
from tasks.log import step_logger
from tasks.model_work import model_work


@task(name="direct_art", cache_policy=backend_step_policy("text"), persist_result=True)
def direct_art(request: ArtRequest, settings: Settings) -> DirectedArt:
    """Return the art direction for one variant and the model work behind it.

    Raises the backend's faults: ``PassingFault`` is retried by the task.
    """
    backend = registry.text_backend(settings)
    with model_work("direct_art", request.variant, backend.identity.label) as log:
        prompt = backend.direct_art(request, log)
    work = log.record()
    step_logger().info(
        "variant %d art direction: %d phrases from %s%s",
        request.variant,
        len(prompt.phrases),
        backend.identity.label,
        describe_work(work.requests, len(work.reasks)),
    )
    return DirectedArt(art=prompt, work=work, backend=backend.identity)


def composition_phrase(zone: Zone) -> PromptPhrase:
    """Return the phrase that keeps the layout's text zone calm in the picture."""
    return PromptPhrase(
        text=f"calm uncluttered empty space in {zone.describe()} of the frame",
        role="composition",
        priority=90,
    )


@task(name="fit_prompt", cache_policy=backend_step_policy("image"), persist_result=True)
def fit_prompt(
    prompt: ImagePrompt,
    zone: Zone,
    mode: LongPrompts,
    max_chunks: int,
    settings: Settings,
) -> FittedPrompt:
    """Return the prompt for one format, fitted to the image backend's CLIP windows.

    Adds the composition phrase that keeps the format's text zone calm, then
    fits for the backend's encoders and syntax (``hyperlocal.prompts.fitting``),
    counting with the backend's own tokenizers. Logs one warning line when a
    phrase was dropped or shortened.
    """
    backend = registry.image_backend(settings)
    composed = prompt.model_copy(update={"phrases": [*prompt.phrases, composition_phrase(zone)]})
    fitted = fit_image_prompt(
        composed,
        syntax=backend.prompt_syntax,
        counters=backend.token_counters(),
        zone=zone.describe(),
        mode=mode,
        max_chunks=max_chunks,
    )
    if fitted.dropped:
        sizes = ", ".join(
            f"{fit.encoder} {fit.tokens_before}->{'+'.join(map(str, fit.tokens))}"
            for fit in [*fitted.encoders, fitted.negative]
        )
        step_logger().warning(
            "prompt over CLIP's %d tokens (%s): dropped %s",
            fitted.limit,
            sizes,
            "; ".join(repr(p.text) for p in fitted.dropped),
        )
    return fitted
