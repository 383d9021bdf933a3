"""Benchmark: per-token cost of schema-constrained generation against plain generation.

    python -m bench.constrained_decoding [--tokens 200] [--rounds 3] [--tokenizer DIR] [--write]

Builds a tiny random-weight qwen2 mlx-lm model (with ``--tokenizer DIR``, a folder holding
a real ``tokenizer.json``, the model gets that vocabulary, e.g. SmolLM2's 49k tokens: the
mask cost grows with the vocabulary) and generates ``--tokens`` tokens plainly and under
``VisionVerdict``'s and ``ImagePrompt``'s schemas (``backends.constrained_decoding``), side
by side in one run. Prints milliseconds per generated token and the ratio to plain. The
tiny model's forward pass is far cheaper than a real model's, so the ratio here is an upper
bound; the absolute extra milliseconds are what a real model pays. Needs the mlx extra.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from backends.constrained_decoding import JsonSchemaConstraint
from backends.vision_verdict import VisionVerdict
from bench.results import record
from hyperlocal.models import ImagePrompt
from tests.tiny_models import build_tiny_mlx_lm


def _with_tokenizer(folder: Path, tokenizer_dir: Path) -> Path:
    """The tiny model's architecture with the vocabulary of ``tokenizer_dir``."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import qwen2
    from transformers import AutoTokenizer

    build_tiny_mlx_lm(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink(missing_ok=True)
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, folder / name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = len(tokenizer)
    config["eos_token_id"] = tokenizer.eos_token_id
    (folder / "config.json").write_text(json.dumps(config))
    mx.random.seed(0)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
    return folder


def _ms_per_token(
    model: Any, tokenizer: Any, schema: type[BaseModel] | None, tokens: int, rounds: int
) -> tuple[float, int]:
    import mlx.core as mx
    import mlx_lm
    from mlx_lm.sample_utils import make_sampler

    best, count = float("inf"), 0
    for seed in range(rounds):
        processors = []
        if schema is not None:
            processors = [JsonSchemaConstraint(tokenizer, schema).logits_processor()]
        mx.random.seed(seed)
        started = time.perf_counter()
        generated = 0
        for response in mlx_lm.stream_generate(
            model,
            tokenizer,
            "Answer in JSON.",
            max_tokens=tokens,
            sampler=make_sampler(temp=1.0),
            logits_processors=processors,
        ):
            generated = response.generation_tokens
        seconds = time.perf_counter() - started
        if generated and seconds / generated < best:
            best, count = seconds / generated, generated
    return best * 1000, count


def main() -> None:
    """Run the benchmark and print (and optionally record) the figures."""
    import mlx_lm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokenizer", type=Path, help="folder with a real tokenizer.json")
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny-lm"
        model_dir = (
            _with_tokenizer(path, args.tokenizer) if args.tokenizer else build_tiny_mlx_lm(path)
        )
        model, tokenizer = mlx_lm.load(str(model_dir))
        _ms_per_token(model, tokenizer, VisionVerdict, 8, 1)  # warm up: kernels, caches
        started = time.perf_counter()
        JsonSchemaConstraint(tokenizer, ImagePrompt, eos_token_ids=[tokenizer.eos_token_id])
        compile_ms = (time.perf_counter() - started) * 1000
        rows = {
            name: _ms_per_token(model, tokenizer, schema, args.tokens, args.rounds)
            for name, schema in (
                ("plain", None),
                ("VisionVerdict", VisionVerdict),
                ("ImagePrompt", ImagePrompt),
            )
        }
    plain = rows["plain"][0]
    vocab = len(tokenizer._tokenizer) if hasattr(tokenizer, "_tokenizer") else "?"
    lines = [
        f"tiny random-weight qwen2 on mlx[cpu], vocabulary {vocab}, up to {args.tokens} "
        f"tokens, best of {args.rounds}; first compile of ImagePrompt for a new EOS set "
        f"{compile_ms:.1f} ms",
        "",
        "| generation | tokens | ms/token | extra ms/token | ratio to plain |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {name} | {count} | {ms:.3f} | {ms - plain:+.3f} | {ms / plain:.2f}x |"
            for name, (ms, count) in rows.items()
        ),
    ]
    print("\n".join(lines))
    if args.write:
        record("Constrained decoding (`python -m bench.constrained_decoding --write`)", lines)


if __name__ == "__main__":
    main()
