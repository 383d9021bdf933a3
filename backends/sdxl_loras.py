"""LoRAs on the diffusers image model: checked for width before loading, applied with a strength.

A LoRA made for another model family (an SD 1.5 LoRA on SDXL, say) has
cross-attention weights of another width, and loading it fails deep inside
PEFT with a wall of size mismatches. The width is read from the file's tensor
shapes first (no weights are loaded), and a LoRA that does not fit is skipped
with one warning line; the run goes on without it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperlocal.errors import ConfigurationError
from hyperlocal.settings import LoraSettings
from hyperlocal.text import slugify

log = logging.getLogger(__name__)

# Key fragments of the down (A) matrix of a cross-attention key projection, in the
# diffusers/PEFT layout (attn2.to_k.lora_A) and the kohya layout (attn2_to_k.lora_down).
_DOWN = ("lora_A", "lora_down", "lora.down")


@dataclass(frozen=True)
class AppliedLora:
    """A LoRA that was loaded, with its adapter name and strength."""

    name: str
    path: str
    strength: float


def lora_file(lora: LoraSettings) -> Path:
    """Return the LoRA's ``.safetensors`` file; raises ``ConfigurationError`` if there is none."""
    path = Path(lora.path).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if len(files) != 1:
            raise ConfigurationError(
                f"LoRA folder {path} holds {len(files)} .safetensors files: name one file"
            )
        return files[0]
    if not path.is_file():
        raise ConfigurationError(f"HYPERLOCAL_IMAGE__LORAS: no such LoRA file: {path}")
    if path.suffix != ".safetensors":
        raise ConfigurationError(f"LoRA {path.name}: only .safetensors LoRAs are loaded")
    return path


def cross_attention_width(file: Path) -> int | None:
    """Return the text width a LoRA's cross-attention expects, or None if it has none."""
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as tensors:
        for key in tensors.keys():  # noqa: SIM118 (safe_open has no __iter__)
            flat = key.replace("_", ".")
            if "attn2.to.k" in flat and any(d.replace("_", ".") in flat for d in _DOWN):
                shape = tensors.get_slice(key).get_shape()
                if len(shape) == 2:
                    return int(shape[1])
    return None


def attach_loras(pipe: Any, loras: list[LoraSettings]) -> list[AppliedLora]:
    """Load ``loras`` into ``pipe`` and set their strengths; return the ones applied.

    A LoRA whose cross-attention width differs from the model's, or that fails to
    load, is skipped with a warning. Raises ``ConfigurationError`` for a missing file.
    """
    from diffusers.utils import logging as diffusers_logging

    model_width = int(pipe.unet.config.cross_attention_dim)
    applied: list[AppliedLora] = []
    used_names: set[str] = set()
    for lora in loras:
        file = lora_file(lora)
        width = cross_attention_width(file)
        if width is not None and width != model_width:
            log.warning(
                "skipping LoRA %s: made for text width %d, this model has %d "
                "(a LoRA of another model family?)",
                file.name,
                width,
                model_width,
            )
            continue
        name = slugify(lora.name or file.stem).replace("-", "_") or "lora"
        while name in used_names:
            name += "_"
        verbosity = diffusers_logging.get_verbosity()
        # diffusers warns per text encoder that a UNet-only LoRA has no keys for it.
        diffusers_logging.set_verbosity_error()
        try:
            pipe.load_lora_weights(str(file.parent), weight_name=file.name, adapter_name=name)
        except (ValueError, RuntimeError, KeyError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.warning("skipping LoRA %s: it does not load into this model: %s", file.name, first)
            continue
        finally:
            diffusers_logging.set_verbosity(verbosity)
        used_names.add(name)
        applied.append(AppliedLora(name=name, path=str(file), strength=lora.strength))
    if applied:
        pipe.set_adapters([a.name for a in applied], adapter_weights=[a.strength for a in applied])
    return applied
