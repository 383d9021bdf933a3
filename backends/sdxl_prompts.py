"""Fitted prompts as SDXL pipeline arguments: plain strings, or compel embeddings.

SDXL has two text encoders: ``prompt`` feeds the first (CLIP ViT-L) and
``prompt_2`` the second (OpenCLIP bigG, which also gives the pooled embedding).
diffusers itself reads no emphasis syntax and cuts every prompt at 77 tokens, so
when compel is installed the prompts go through ``compel.CompelForSDXL``: it
reads ``(phrase)1.2`` weights and encodes ``("a", "b").and()`` chunks of a
long prompt one window each, for both encoders.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from hyperlocal.models import FittedPrompt, PromptSyntax


def compel_installed() -> bool:
    """Whether compel (prompt weights and long prompts for diffusers) can be imported."""
    return importlib.util.find_spec("compel") is not None


def sdxl_syntax() -> PromptSyntax:
    """Return the prompt syntax the diffusers kind takes: compel's when it is installed."""
    if compel_installed():
        return PromptSyntax(encoders=2, weights="compel", chunks="compel")
    return PromptSyntax(encoders=2, weights="none", chunks="none")


class PromptEncoder:
    """Turns a batch of fitted prompts into the keyword arguments of an SDXL pipeline call."""

    def __init__(self, pipe: Any, device: str) -> None:
        self._pipe = pipe
        self._device = device
        self._compel: Any = None
        if compel_installed():
            from compel import CompelForSDXL

            self._compel = CompelForSDXL(pipe, device=device)

    def arguments(self, prompts: Sequence[FittedPrompt]) -> dict[str, Any]:
        """Return ``prompt_embeds`` and the rest (compel), or the prompt strings."""
        first = [p.prompt for p in prompts]
        second = [p.prompt_2 or p.prompt for p in prompts]
        negative = [p.negative_prompt for p in prompts]
        negative_2 = [p.negative_prompt_2 or p.negative_prompt for p in prompts]
        if self._compel is None or any(p.syntax.weights != "compel" for p in prompts):
            return {
                "prompt": first,
                "prompt_2": second,
                "negative_prompt": negative,
                "negative_prompt_2": negative_2,
            }
        import torch

        with torch.no_grad():
            conditioning = self._compel(
                main_prompt=first,
                style_prompt=second,
                negative_prompt=negative,
                negative_style_prompt=negative_2,
            )
        return {
            "prompt_embeds": conditioning.embeds,
            "pooled_prompt_embeds": conditioning.pooled_embeds,
            "negative_prompt_embeds": conditioning.negative_embeds,
            "negative_pooled_prompt_embeds": conditioning.negative_pooled_embeds,
        }
