"""Counting CLIP tokens exactly, the way the image model's own tokenizer does.

SDXL's text encoders see at most 77 tokens: a start token, 75 of text and an
end token; diffusers silently cuts the rest (mid-word). Counts here come from
the real CLIP BPE (``instant-clip-tokenizer``, numpy only) after the same
normalisation as transformers' ``CLIPTokenizer`` (the tokenizer diffusers
loads): Unicode NFC, then lowercase character by character. A backend with a
model loaded can hand its own tokenizers over instead (``EncodeCounter``).

Known differences from OpenAI's original CLIP tokenizer, which also fixes
mojibake (ftfy) and unescapes HTML entities: transformers does neither, and
neither do we, because diffusers encodes with transformers.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache
from typing import Protocol, runtime_checkable

#: Tokens CLIP sees per prompt (or per chunk): start + 75 + end.
CLIP_WINDOW = 77
#: Tokens of text per window, start and end excluded.
CLIP_TEXT_TOKENS = CLIP_WINDOW - 2


@runtime_checkable
class TokenCounter(Protocol):
    """Counts the tokens a text takes in one text encoder, start and end included."""

    @property
    def name(self) -> str:
        """What counts: e.g. ``clip-bpe`` or ``tokenizer_2 of <model>``."""
        ...

    def count(self, text: str) -> int:
        """Return the number of tokens ``text`` takes, start and end tokens included."""
        ...


def normalise(text: str) -> str:
    """Return ``text`` as transformers' CLIP tokenizer sees it: NFC, lowercase per character.

    Lowercasing one character at a time matches the Rust tokenizers library
    (Python's ``str.lower`` turns a word-final capital sigma into a final sigma).
    """
    return "".join(ch.lower() for ch in unicodedata.normalize("NFC", text))


class ClipTokenCounter:
    """The real CLIP BPE from ``instant-clip-tokenizer``: exact ids, no model needed."""

    name = "clip-bpe"

    def __init__(self) -> None:
        from instant_clip_tokenizer import Tokenizer

        self._tokenizer = Tokenizer()
        self._lock = threading.Lock()

    def encode(self, text: str) -> list[int]:
        """Return the token ids of ``text`` without the start and end tokens."""
        with self._lock:
            return list(self._tokenizer.encode(normalise(text)))

    def count(self, text: str) -> int:
        """Return the number of tokens ``text`` takes, start and end tokens included."""
        return len(self.encode(text)) + 2


class EncodeCounter:
    """Counts with any tokenizer given as a function that returns ids with start and end.

    For a model's own tokenizer, e.g. ``EncodeCounter("tokenizer_2", lambda t:
    pipe.tokenizer_2(t, truncation=False)["input_ids"])``.
    """

    def __init__(self, name: str, encode: Callable[[str], Sequence[int]]) -> None:
        self.name = name
        self._encode = encode
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        """Return the number of tokens ``text`` takes, start and end tokens included."""
        with self._lock:
            return len(self._encode(text))


@cache
def clip_counter() -> ClipTokenCounter:
    """Return the process's shared CLIP token counter."""
    return ClipTokenCounter()
