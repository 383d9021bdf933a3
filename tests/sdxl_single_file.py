"""Write a diffusers SDXL pipeline as one original-layout ``.safetensors`` checkpoint (for tests).

A1111 and Civitai hand out SDXL models as a single file in Stability's original ("sgm"/LDM)
layout: ``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE),
``conditioner.embedders.0.transformer.*`` (CLIP-L, Hugging Face names) and
``conditioner.embedders.1.model.*`` (OpenCLIP bigG, open_clip names). Tests that load such a file
with ``StableDiffusionXLPipeline.from_single_file(file, config=folder)`` need one without a
download, so this module renames the tiny pipeline's weights (``tests/tiny_sdxl.py``) into that
layout. The renaming is the inverse of diffusers' single-file converters
(``diffusers.loaders.single_file_utils``), written out here, driven by the models' configs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

Rule = tuple[str, Callable[[re.Match[str]], str]]

#: Diffusers' names of a UNet resnet's layers -> the original ``ResBlock`` names.
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
#: Diffusers' names of the VAE's layers, inside a block -> the original names.
_VAE_INNER = {
    "conv_shortcut": "nin_shortcut",
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _rename(key: str, rules: list[Rule]) -> str:
    """Rewrite ``key``'s leading module path by the first rule whose pattern matches it."""
    for pattern, new in rules:
        if match := re.match(pattern, key):
            return new(match) + key[match.end() :]
    raise KeyError(f"no original-layout name for {key!r}")


def _unet_rules(unet: Any) -> list[Rule]:
    per_block = unet.config.layers_per_block  # SDXL: one int for all blocks
    step = per_block + 1  # original blocks per diffusers block (its layers + a resampler)
    with_attention = [hasattr(block, "attentions") for block in unet.up_blocks]

    def down(m: re.Match[str]) -> str:
        block, kind, layer = int(m[1]), m[2], int(m[3])
        return f"input_blocks.{1 + block * step + layer}.{int(kind == 'attentions')}."

    def up(m: re.Match[str]) -> str:
        block, kind, layer = int(m[1]), m[2], int(m[3])
        return f"output_blocks.{block * step + layer}.{int(kind == 'attentions')}."

    def upsampler(m: re.Match[str]) -> str:
        block = int(m[1])  # after the block's last resnet, and its attention when it has one
        return f"output_blocks.{block * step + per_block}.{1 + with_attention[block]}.conv."

    return [
        (r"time_embedding\.linear_(\d)\.", lambda m: f"time_embed.{2 * int(m[1]) - 2}."),
        (r"add_embedding\.linear_(\d)\.", lambda m: f"label_emb.0.{2 * int(m[1]) - 2}."),
        (r"conv_in\.", lambda m: "input_blocks.0.0."),
        (r"conv_norm_out\.", lambda m: "out.0."),
        (r"conv_out\.", lambda m: "out.2."),
        (r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.", down),
        (
            r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.",
            lambda m: f"input_blocks.{1 + int(m[1]) * step + per_block}.0.op.",
        ),
        (r"mid_block\.resnets\.(\d+)\.", lambda m: f"middle_block.{2 * int(m[1])}."),
        (r"mid_block\.attentions\.0\.", lambda m: "middle_block.1."),
        (r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.", up),
        (r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.", upsampler),
    ]


def _unet(unet: Any) -> dict[str, torch.Tensor]:
    rules = _unet_rules(unet)
    out = {}
    for key, value in unet.state_dict().items():
        if match := re.match(r"(.*\.resnets\.\d+\.)(\w+)(\..*)", key):
            key = match[1] + _UNET_RESNET.get(match[2], match[2]) + match[3]
        out[f"model.diffusion_model.{_rename(key, rules)}"] = value
    return out


def _vae(vae: Any) -> dict[str, torch.Tensor]:
    last_up = len(vae.config.up_block_types) - 1  # the original numbers decoder blocks upwards
    kinds = {"resnets": "block", "downsamplers.0": "downsample", "upsamplers.0": "upsample"}
    rules: list[Rule] = [
        (r"(encoder|decoder)\.conv_norm_out\.", lambda m: f"{m[1]}.norm_out."),
        (r"(encoder\.|decoder\.)?(conv_in|conv_out|quant_conv|post_quant_conv)\.", lambda m: m[0]),
        (
            r"encoder\.down_blocks\.(\d+)\.(resnets|downsamplers\.0)\.",
            lambda m: f"encoder.down.{m[1]}.{kinds[m[2]]}.",
        ),
        (
            r"decoder\.up_blocks\.(\d+)\.(resnets|upsamplers\.0)\.",
            lambda m: f"decoder.up.{last_up - int(m[1])}.{kinds[m[2]]}.",
        ),
        (
            r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.",
            lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}.",
        ),
        (r"(encoder|decoder)\.mid_block\.attentions\.0\.", lambda m: f"{m[1]}.mid.attn_1."),
    ]
    out = {}
    for key, value in vae.state_dict().items():
        if ".attentions." in key and key.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]  # the original's attention layers are 1x1 convs
        inner, _, leaf = key.rpartition(".")
        for new_name, old_name in _VAE_INNER.items():
            inner = re.sub(rf"\.{re.escape(new_name)}$", f".{old_name}", inner)
        out[f"first_stage_model.{_rename(f'{inner}.{leaf}', rules)}"] = value
    return out


def _clip_l(text_encoder: Any) -> dict[str, torch.Tensor]:
    prefix = "conditioner.embedders.0.transformer."
    # transformers >= 5.6 flattened CLIPTextModel; the original keeps the ``text_model.`` level.
    return {
        prefix + (key if key.startswith("text_model.") else f"text_model.{key}"): value
        for key, value in text_encoder.state_dict().items()
    }


def _open_clip(text_encoder: Any) -> dict[str, torch.Tensor]:
    prefix = "conditioner.embedders.1.model."
    state = {k.removeprefix("text_model."): v for k, v in text_encoder.state_dict().items()}
    out = {
        "token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
        "positional_embedding": state.pop("embeddings.position_embedding.weight"),
        "ln_final.weight": state.pop("final_layer_norm.weight"),
        "ln_final.bias": state.pop("final_layer_norm.bias"),
        "text_projection": state.pop("text_projection.weight").T,  # open_clip: x @ projection
    }
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc"}
    names |= {"mlp.fc2": "mlp.c_proj", "self_attn.out_proj": "attn.out_proj"}
    for layer in range(text_encoder.config.num_hidden_layers):
        old, new = f"encoder.layers.{layer}.", f"transformer.resblocks.{layer}."
        for leaf in ("weight", "bias"):
            qkv = [state.pop(f"{old}self_attn.{p}_proj.{leaf}") for p in "qkv"]
            out[f"{new}attn.in_proj_{leaf}"] = torch.cat(qkv)
            for hf_name, oc_name in names.items():
                out[f"{new}{oc_name}.{leaf}"] = state.pop(f"{old}{hf_name}.{leaf}")
    if state:
        raise KeyError(f"no original-layout name for {sorted(state)}")
    return {prefix + key: value for key, value in out.items()}


def write_original_sdxl_checkpoint(pipe: Any, file: Path) -> Path:
    """Save ``pipe``'s UNet, VAE and both text encoders to ``file`` in the original SDXL layout.

    ``pipe`` is a ``StableDiffusionXLPipeline`` (e.g. ``tests.tiny_sdxl.build_tiny_sdxl_pipeline``);
    its two text encoders must differ in width, as ``from_single_file`` tells them apart by it.
    The file loads back with ``StableDiffusionXLPipeline.from_single_file(file, config=folder)``,
    where ``folder`` is the same pipeline saved in diffusers format (configs and tokenizers).
    """
    from safetensors.torch import save_file

    state = _unet(pipe.unet) | _vae(pipe.vae)
    state |= _clip_l(pipe.text_encoder) | _open_clip(pipe.text_encoder_2)
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(file))
    return file
