"""Tiny random-weight SDXL pipelines and LoRAs, built at test time (no hub, no download).

Follows ``../shared/recipes/tiny_sdxl.py``: real SDXL component classes with
tiny widths, the real CLIP vocabulary (``tests/clip_vocab.py``), and two text
encoders of different widths (32 and 48), as ``from_single_file`` tells them
apart by width. A 64x64 picture takes about 0.1 s on one CPU core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.clip_vocab import write_tokenizer_files

#: Width of the UNet's cross-attention: both text encoders' hidden sizes together.
CROSS_ATTENTION_DIM = 32 + 48


def _unet(cross_attention_dim: int, lcm: bool) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        norm_num_groups=32,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        # 6 add_time_ids x 8, plus the pooled width of text_encoder_2 (projection_dim)
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=cross_attention_dim,
        # An LCM-distilled UNet embeds the guidance scale instead of running CFG.
        time_cond_proj_dim=256 if lcm else None,
    )


def _text_encoder_config(hidden: int) -> Any:
    from transformers import CLIPTextConfig

    # The special ids of the real SDXL encoder configs (bos 0, eos 2, pad 1).
    return CLIPTextConfig(
        vocab_size=49408,
        max_position_embeddings=77,
        hidden_size=hidden,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=3,
        hidden_act="gelu",
        projection_dim=32,
        layer_norm_eps=1e-5,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )


def build_tiny_sdxl_pipeline(work: Path, *, lcm: bool = False) -> Any:
    """Return a tiny random-weight ``StableDiffusionXLPipeline`` (seeded, so always the same)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed(0)
    unet = _unet(CROSS_ATTENTION_DIM, lcm)
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        sample_size=64,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(_text_encoder_config(32))
    torch.manual_seed(1)
    text_encoder_2 = CLIPTextModelWithProjection(_text_encoder_config(48))
    vocab = write_tokenizer_files(work / "clip-tokenizer")
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        # SDXL pads tokenizer/ with <|endoftext|> and tokenizer_2/ with "!" (id 0).
        tokenizer=CLIPTokenizer.from_pretrained(str(vocab)),
        tokenizer_2=CLIPTokenizer.from_pretrained(str(vocab), pad_token="!"),
        unet=unet,
        scheduler=scheduler,
    )


def build_tiny_sdxl(folder: Path, *, lcm: bool = False) -> Path:
    """Save a tiny SDXL pipeline as a diffusers folder at ``folder`` and return it."""
    pipe = build_tiny_sdxl_pipeline(folder.parent, lcm=lcm)
    pipe.save_pretrained(str(folder))
    return folder


def build_tiny_lora(file: Path, *, cross_attention_dim: int = CROSS_ATTENTION_DIM) -> Path:
    """Write a tiny UNet LoRA (rank 4, random non-zero weights) made for ``cross_attention_dim``.

    With the tiny pipeline's width (80) it applies; with another it does not fit.
    """
    import torch
    from diffusers import StableDiffusionXLPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(3)
    unet = _unet(cross_attention_dim, lcm=False)
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "lora_" in name:
                # peft starts lora_B at zero (no effect); a test LoRA must change the picture.
                parameter.copy_(torch.randn_like(parameter) * 0.5)
    file.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionXLPipeline.save_lora_weights(
        save_directory=str(file.parent),
        unet_lora_layers=get_peft_model_state_dict(unet),
        weight_name=file.name,
    )
    return file
