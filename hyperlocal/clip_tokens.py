"""Counting CLIP tokens exactly and fitting prompt phrases into CLIP's window.

SDXL's text encoders see at most 77 tokens: a start token, 75 of text and an
end token. Anything past that is cut by diffusers without a word (mid-word).
Here phrases are counted with the real CLIP BPE (``instant-clip-tokenizer``)
and the least important ones are dropped whole until the prompt fits.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Sequence
from functools import cache

from hyperlocal.models import PromptPhrase

CLIP_WINDOW = 77
#: Roles that lead the prompt: CLIP's first tokens feed SDXL's pooled embedding.
LEADING_ROLES = ("subject", "style")
_SPACES = re.compile(r"\s+")


class ClipTokenCounter:
    """Counts tokens the way CLIP's tokenizer sees a prompt, start and end included."""

    def __init__(self) -> None:
        from instant_clip_tokenizer import Tokenizer

        self._tokenizer = Tokenizer()
        self._lock = threading.Lock()

    @staticmethod
    def normalise(text: str) -> str:
        """Return ``text`` cleaned as CLIP does: HTML unescaped, spaces collapsed, lowercase."""
        return _SPACES.sub(" ", html.unescape(text)).strip().lower()

    def count(self, text: str) -> int:
        """Return the number of tokens ``text`` takes, including the start and end tokens."""
        with self._lock:
            return len(self._tokenizer.encode(self.normalise(text))) + 2


@cache
def clip_counter() -> ClipTokenCounter:
    """Return the process's shared CLIP token counter."""
    return ClipTokenCounter()


def join_phrases(phrases: Sequence[PromptPhrase]) -> str:
    """Return the phrases as one comma-separated prompt."""
    return ", ".join(p.text for p in phrases)


def lead_order(phrases: Sequence[PromptPhrase]) -> list[PromptPhrase]:
    """Return the phrases with subject and style first, the rest in their given order."""
    leading = [p for role in LEADING_ROLES for p in phrases if p.role == role]
    return leading + [p for p in phrases if p.role not in LEADING_ROLES]


def fit_phrases(
    phrases: Sequence[PromptPhrase],
    limit: int = CLIP_WINDOW,
    counter: ClipTokenCounter | None = None,
) -> tuple[list[PromptPhrase], list[PromptPhrase]]:
    """Return ``(kept, dropped)``: whole phrases dropped, lowest priority first, until it fits.

    Kept phrases stay in their given order. Among equal priorities the later
    phrase goes first. A single phrase too long on its own is shortened at a
    word boundary (and reported as dropped in its long form).
    """
    counter = counter or clip_counter()
    kept = list(phrases)
    dropped: list[PromptPhrase] = []
    while kept and counter.count(join_phrases(kept)) > limit:
        if len(kept) == 1:
            only = kept[0]
            words = only.text.split()
            while len(words) > 1 and counter.count(" ".join(words)) > limit:
                words.pop()
            dropped.append(only)
            kept = [only.model_copy(update={"text": " ".join(words)})]
            break
        victim = min(reversed(range(len(kept))), key=lambda i: kept[i].priority)
        dropped.append(kept.pop(victim))
    return kept, dropped
