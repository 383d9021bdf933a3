"""Tiny random-weight models built at test time (nothing is downloaded or committed).

Random weights answer with junk: tests check structure and the bad-output path,
never content.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{m['role']}}\n{{m['content']}}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _trained_tokenizer(specials: list[str], sample: str) -> Any:
    """A 300-token byte-level BPE tokenizer trained on ``sample``, with ``specials``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([sample] * 20, trainer)
    return tokenizer


def build_tiny_mlx_lm(folder: Path) -> Path:
    """Write a 2-layer qwen2 mlx-lm model with a trained byte-level BPE tokenizer."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import qwen2

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _trained_tokenizer(SPECIAL_TOKENS, '{"headline": "Sourdough", "where": "Hebden"}')
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "chat_template": CHAT_TEMPLATE,
            }
        )
    )
    config = {
        "model_type": "qwen2",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "vocab_size": tokenizer.get_vocab_size(),
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "eos_token_id": tokenizer.token_to_id("<|im_end|>"),
    }
    (folder / "config.json").write_text(json.dumps(config))
    mx.random.seed(0)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
    return folder


VLM_SPECIAL_TOKENS = [
    *SPECIAL_TOKENS,
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Qwen2-VL's template, cut down: a picture part becomes the vision markers around one pad
# token, which the processor widens to one pad per merged patch.
VLM_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{m['role']}}\n"
    "{% if m['content'] is string %}{{m['content']}}{% else %}"
    "{% for c in m['content'] %}"
    "{% if c['type'] in ['image', 'image_url'] %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{c['text']}}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_mlx_vlm(folder: Path, answers: Mapping[str, str] | None = None) -> Path:
    """Write a 2-layer qwen2_vl mlx-vlm model (2-block vision tower) with a trained tokenizer.

    Its image processor takes at most 112x112 pixels (16 patches of 28), so a
    check costs milliseconds on a CPU whatever picture it is given. With
    ``answers`` (phrase of the prompt -> whole answer) its language model is
    the hand-built lookup of ``build_answering_mlx_lm`` instead of random.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_vlm.models import qwen2_vl

    folder.mkdir(parents=True, exist_ok=True)
    tokens: _AnsweringTokens | None = None
    if answers:
        tokens = _AnsweringTokens(answers, VLM_SPECIAL_TOKENS, VLM_CHAT_TEMPLATE)
        tokenizer = tokens.tokenizer
        tokens.save(folder)
    else:
        tokenizer = _trained_tokenizer(
            VLM_SPECIAL_TOKENS, '{"has_text": false, "score": 8, "reason": "calm"}'
        )
        tokenizer.save(str(folder / "tokenizer.json"))
        (folder / "tokenizer_config.json").write_text(
            json.dumps(
                {
                    "tokenizer_class": "PreTrainedTokenizerFast",
                    "eos_token": "<|im_end|>",
                    "pad_token": "<|endoftext|>",
                    "chat_template": VLM_CHAT_TEMPLATE,
                }
            )
        )
    ids = {token: tokenizer.token_to_id(token) for token in VLM_SPECIAL_TOKENS}
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "patch_size": 14,
                "temporal_patch_size": 2,
                "merge_size": 2,
                "min_pixels": 56 * 56,
                "max_pixels": 112 * 112,
                "image_mean": [0.48, 0.46, 0.41],
                "image_std": [0.27, 0.26, 0.28],
            }
        )
    )
    vision = {
        "model_type": "qwen2_vl",
        "depth": 2,
        "embed_dim": 32,
        "hidden_size": 64,
        "num_heads": 4,
        "mlp_ratio": 2,  # an int: transformers 5 refuses a float here
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    config = {
        "model_type": "qwen2_vl",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "vocab_size": tokenizer.get_vocab_size(),
        "rope_theta": 10000.0,
        # Multimodal RoPE: head dim 16 split into temporal, height and width sections.
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "tie_word_embeddings": tokens is None,
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "eos_token_id": ids["<|im_end|>"],
        "vision_config": vision,
    }
    (folder / "config.json").write_text(json.dumps(config))
    model_config = qwen2_vl.ModelConfig.from_dict(config)
    model_config.vision_config = qwen2_vl.VisionConfig.from_dict(vision)
    model_config.text_config = qwen2_vl.TextConfig.from_dict(config)
    mx.random.seed(0)
    model = qwen2_vl.Model(model_config)
    if tokens is None:
        mx.save_safetensors(
            str(folder / "model.safetensors"), dict(tree_flatten(model.parameters()))
        )
        return folder
    import numpy as np

    weights = {name: np.array(value) for name, value in tree_flatten(model.parameters())}
    tokens.set_weights(weights, "language_model.", layers=2)
    _save_weights(model, weights, folder)
    return folder


class _AnsweringTokens:
    """A byte-level tokenizer in which each fixed answer is one vocabulary entry.

    The chat template ends every prompt with a marker token chosen by the
    phrase found in the messages (``answers`` maps phrase -> answer).
    """

    def __init__(self, answers: Mapping[str, str], specials: list[str], template: str) -> None:
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        vocab = {char: i for i, char in enumerate(pre_tokenizers.ByteLevel.alphabet())}
        self.answer_ids: list[int] = []
        for answer in answers.values():
            ((encoded, _span),) = byte_level.pre_tokenize_str(answer)
            self.answer_ids.append(vocab.setdefault(encoded, len(vocab)))
        self.tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        self.tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        self.tokenizer.decoder = decoders.ByteLevel()
        markers = [f"<|answer_{i}|>" for i in range(len(answers))]
        self.tokenizer.add_special_tokens([AddedToken(t, special=True) for t in specials + markers])
        self.marker_ids = [self.tokenizer.token_to_id(marker) for marker in markers]
        self.eos = self.tokenizer.token_to_id("<|im_end|>")
        # `| string` also finds the phrase when a server turned the content into parts.
        branches = [
            ("if" if i == 0 else "elif", json.dumps(phrase), marker)
            for i, (phrase, marker) in enumerate(zip(answers, markers, strict=True))
        ]
        choose = "".join(
            "{% " + word + " " + phrase + " in (messages | string) %}" + marker
            for word, phrase, marker in branches
        )
        generation = "<|im_start|>assistant\n{% endif %}"
        assert generation in template
        self.template = template.replace(
            generation, "<|im_start|>assistant\n" + choose + "{% endif %}{% endif %}"
        )

    def save(self, folder: Path) -> None:
        self.tokenizer.save(str(folder / "tokenizer.json"))
        (folder / "tokenizer_config.json").write_text(
            json.dumps(
                {
                    "tokenizer_class": "PreTrainedTokenizerFast",
                    "eos_token": "<|im_end|>",
                    "pad_token": "<|endoftext|>",
                    "chat_template": self.template,
                }
            )
        )

    def set_weights(self, weights: dict[str, Any], prefix: str, layers: int) -> None:
        """Make the language model a lookup: marker -> its answer -> end of message.

        Every layer writes zero into the residual stream (o_proj and down_proj
        are zero), so the next token depends on the current one alone; the
        margins make sampling at any temperature pick the same tokens.
        """
        import numpy as np

        for name in list(weights):
            if name.startswith(prefix):
                weights[name] = np.zeros(weights[name].shape, np.float32)
        weights[f"{prefix}model.norm.weight"][:] = 1.0
        for layer in range(layers):
            for norm in ("input_layernorm", "post_attention_layernorm"):
                weights[f"{prefix}model.layers.{layer}.{norm}.weight"][:] = 1.0
        embed = weights[f"{prefix}model.embed_tokens.weight"]
        unembed = weights[f"{prefix}lm_head.weight"]
        embed[:, 0] = 1.0  # every other token: a direction no output row reads
        # Marker i sits on axis 1 + i, answer i on axis 1 + n + i; end of message reads them.
        n = len(self.marker_ids)
        for i, (marker, answer) in enumerate(zip(self.marker_ids, self.answer_ids, strict=True)):
            embed[marker] = 0.0
            embed[marker, 1 + i] = 1.0
            embed[answer] = 0.0
            embed[answer, 1 + n + i] = 1.0
            unembed[answer, 1 + i] = 10.0
            unembed[self.eos, 1 + n + i] = 10.0


def _save_weights(model: Any, weights: dict[str, Any], folder: Path) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten

    model.update(tree_unflatten([(name, mx.array(value)) for name, value in weights.items()]))
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))


def build_answering_mlx_lm(folder: Path, answers: Mapping[str, str]) -> Path:
    """Write a tiny qwen2 mlx-lm model that answers each request with a fixed text.

    ``answers`` maps a phrase of the prompt to the whole answer. A random
    model answers junk, so a test that needs steps to *finish* through a real
    server (crash and resume) needs a model that answers validly. This one is
    built by hand, not trained (see ``_AnsweringTokens``).
    """
    import numpy as np
    from mlx.utils import tree_flatten
    from mlx_lm.models import qwen2

    folder.mkdir(parents=True, exist_ok=True)
    tokens = _AnsweringTokens(answers, SPECIAL_TOKENS, CHAT_TEMPLATE)
    tokens.save(folder)
    config = {
        "model_type": "qwen2",
        "hidden_size": 64,
        "num_hidden_layers": 1,
        "intermediate_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "vocab_size": tokens.tokenizer.get_vocab_size(),
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "eos_token_id": tokens.eos,
    }
    (folder / "config.json").write_text(json.dumps(config))
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    weights = {name: np.array(value) for name, value in tree_flatten(model.parameters())}
    tokens.set_weights(weights, "", layers=1)
    _save_weights(model, weights, folder)
    return folder
