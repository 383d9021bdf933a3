"""transformers' CLIPTokenizer built offline from the real CLIP vocabulary.

The BPE merges ship inside open-clip-torch (MIT), installed by ``make test``
with ``--no-deps`` (its torchvision breaks beside the CPU torch). The file is
read without importing ``open_clip`` (which needs torch).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

VOCAB_SIZE = 49408
MERGES = 49152 - 256 - 2  # CLIP uses the first 48894 merges of the file


def bpe_file() -> Path:
    """Return the path of ``bpe_simple_vocab_16e6.txt.gz`` from open-clip-torch."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("open-clip-torch is not installed: run `make test` once")
    return Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"


def _byte_alphabet() -> list[str]:
    # GPT-2's reversible byte-to-unicode table, in vocabulary order: the printable
    # bytes as themselves, then every other byte mapped to U+0100 and up.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    others = 256 - len(printable)
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(others)]


def write_tokenizer_files(folder: Path) -> Path:
    """Write vocab.json, merges.txt and the tokenizer config of CLIP into ``folder``."""
    lines = gzip.decompress(bpe_file().read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGES + 1]]
    alphabet = _byte_alphabet()
    vocab = [*alphabet, *(t + "</w>" for t in alphabet), *("".join(m) for m in merges)]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(
        json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False),
        encoding="utf-8",
    )
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8"
    )
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


@cache
def hf_clip_tokenizer(folder: Path) -> Any:
    """Return transformers' CLIPTokenizer loaded from files written into ``folder``."""
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(write_tokenizer_files(folder)))
    assert len(tokenizer) == VOCAB_SIZE
    return tokenizer
