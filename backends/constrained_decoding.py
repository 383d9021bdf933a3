"""Schema-constrained JSON generation for the in-process mlx backends (mlx-lm, mlx-vlm).

``JsonSchemaConstraint(tokenizer, Model)`` compiles a JSON schema once (cached per
tokenizer and schema); ``constraint.logits_processor()`` returns a fresh processor for one
generation, passed as ``logits_processors=[processor]`` to ``mlx_lm.generate`` /
``mlx_lm.stream_generate`` and to ``mlx_vlm.generate`` / ``mlx_vlm.stream_generate`` (mlx-vlm
0.7 hands the keyword on to its ``generate_step``). At every step the processor masks the
tokens that would leave the schema to ``-inf`` and allows EOS only once the JSON is complete,
so a finished answer always parses. ``processor.complete`` and ``processor.generated_tokens``
tell a finished answer from one cut off by ``max_tokens`` (``raise_if_cut_off``).

The library is llguidance, chosen by measurement (2 CPU cores; SmolLM2's real 49,152-token
vocabulary; each library walking a valid VisionVerdict / ImagePrompt answer token by token,
mask computed and token consumed at every step):

=====================  =================  ===================  =========================
                       llguidance 1.9.1   outlines-core 0.2.14 xgrammar 0.2.9
=====================  =================  ===================  =========================
new dependencies       none: mlx-vlm 0.7  none                 triton, apache-tvm-ffi;
                       requires it                             imports torch (2.3 s)
tokenizer set-up       0.31 s             0.44 s               0.15 s
compile VisionVerdict  0.9 ms             5,568 ms             10.8 ms
compile ImagePrompt    0.7 ms             11,147 ms            7.4 ms
mask+advance / token   0.06 / 0.02 ms     0.40 / 0.27 ms       0.008 / 0.005 ms
=====================  =================  ===================  =========================

All three cover maxLength, maxItems, enums, $defs/$ref and integer ranges. xgrammar's
masks are fastest but it would pull triton and torch into an mlx install; outlines-core
compiles length-bounded strings into huge regex automata (seconds per schema). llguidance
costs nothing to install, compiles in about a millisecond, and its mask (tens of
microseconds) is lost in the noise of a real model's step: ``python -m
bench.constrained_decoding --tokenizer DIR`` measured 0.89-0.99x plain generation's time per
token on a tiny 49k-vocabulary model. mlx-vlm's own llguidance processor
(``mlx_vlm.structured``) applies its mask with a Metal kernel, which fails on Linux; this
module applies it with ``mx.where``, which runs everywhere.

Strings are tightened beyond the schema (``tighten_strings``, on by default): no control
characters (JSON escapes other than ``\\"`` and ``\\\\`` are refused) and no leading or
trailing whitespace, because our pydantic models strip whitespace before checking
``min_length`` and refuse control characters (``hyperlocal.models.fields``). Every answer
that satisfies the tightened schema satisfies the original. JSON is compact (no whitespace
between tokens: fewer tokens on a slow CPU).

Importing this module imports neither mlx nor llguidance; both are imported on first use.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from hyperlocal.errors import BackendNotAvailable, InvalidModelOutput

if TYPE_CHECKING:
    import mlx.core as mx

INSTALL_HINT = "pip install 'hyperlocal[mlx]'"

#: Characters a string may not contain: Unicode category Cc and the line/paragraph
#: separators (what ``hyperlocal.text.control_characters`` refuses), and symbols (So:
#: emoji, dingbats), private-use and unassigned code points, which no flyer's words
#: need and which the copy check (``chat_prompts.symbol_problems``) would refuse.
_CONTROL = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\p{So}\\p{Co}\\p{Cn}"
_INNER = f"[^{_CONTROL}]"
_EDGE = f"[^\\s{_CONTROL}]"
#: A string with no control characters and no whitespace at either end (may be empty).
TIGHT_STRING_PATTERN = f"^({_EDGE}({_INNER}*{_EDGE})?)?$"

#: llguidance JSON options: compact separators, no free whitespace, only the escapes that
#: cannot make a control character.
_JSON_OPTIONS: dict[str, Any] = {
    "whitespace_flexible": False,
    "item_separator": ",",
    "key_separator": ":",
    "json_allowed_escapes": '"\\',
}
_TOKENIZER_CACHE_SIZE = 8
_GRAMMAR_CACHE_SIZE = 64


def _llguidance() -> Any:
    try:
        import llguidance
        import llguidance.numpy
    except ImportError:
        raise BackendNotAvailable(
            f"constrained JSON generation needs llguidance: {INSTALL_HINT}"
        ) from None
    return llguidance


def schema_json(schema: type[BaseModel] | Mapping[str, Any] | str) -> str:
    """Return ``schema`` (a pydantic model class, a dict or JSON text) as canonical JSON text.

    Raises ``ValueError`` when a string is not a JSON object.
    """
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        value: Any = schema.model_json_schema()
    elif isinstance(schema, str):
        value = json.loads(schema)
    else:
        value = dict(schema)
    if not isinstance(value, dict):
        raise ValueError("a JSON schema must be a JSON object")
    return json.dumps(value, separators=(",", ":"))


def tighten_strings(schema: Any) -> Any:
    """Return a copy of ``schema`` with free strings and open objects closed.

    A free string (``{"type": "string"}`` without ``pattern``, ``format``, ``enum`` or
    ``const``) gets ``TIGHT_STRING_PATTERN``, its length bounds kept; an object with
    ``properties`` and no ``additionalProperties`` gets ``additionalProperties: false``
    (pydantic ignores extra keys by default, and a model would spend tokens on them).
    Never raises.
    """
    if isinstance(schema, list):
        return [tighten_strings(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: tighten_strings(value) for key, value in schema.items()}
    if out.get("type") == "string" and not {"pattern", "format", "enum", "const"} & out.keys():
        out["pattern"] = TIGHT_STRING_PATTERN
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


def _hf_tokenizer(tokenizer: Any) -> Any:
    """Return the Hugging Face fast tokenizer inside an mlx-lm wrapper or an mlx-vlm processor."""
    seen = 0
    while seen < 4 and not hasattr(tokenizer, "backend_tokenizer"):
        inner = getattr(tokenizer, "_tokenizer", None) or getattr(tokenizer, "tokenizer", None)
        if inner is None:
            break
        tokenizer = inner
        seen += 1
    if not hasattr(tokenizer, "backend_tokenizer"):
        raise ValueError(
            f"constrained generation needs a fast (Rust) tokenizer, not {type(tokenizer).__name__}"
        )
    return tokenizer


def _eos_ids(tokenizer: Any, hf: Any) -> list[int]:
    ids = getattr(tokenizer, "eos_token_ids", None)  # mlx-lm's wrapper: a set
    if not ids:
        ids = [hf.eos_token_id] if hf.eos_token_id is not None else []
    return sorted(int(i) for i in ids)


class _Compiled:
    """One schema compiled for one tokenizer: a matcher that each generation copies."""

    def __init__(self, llg_tokenizer: Any, matcher: Any, eos: list[int], vocab: int) -> None:
        self.llg_tokenizer = llg_tokenizer
        self.matcher = matcher
        self.eos = eos
        self.vocab = vocab


_lock = threading.Lock()
# id(tokenizer) -> (tokenizer, llg tokenizer): the tokenizer is held so its id is not reused.
_tokenizers: OrderedDict[tuple[int, tuple[int, ...]], tuple[Any, Any]] = OrderedDict()
_compiled: OrderedDict[tuple[int, tuple[int, ...], str, bool], _Compiled] = OrderedDict()


def _llg_tokenizer(tokenizer: Any, eos: Iterable[int] | None) -> tuple[Any, list[int]]:
    llguidance = _llguidance()
    hf = _hf_tokenizer(tokenizer)
    eos_ids = sorted(int(i) for i in eos) if eos is not None else _eos_ids(tokenizer, hf)
    if not eos_ids:
        raise ValueError("constrained generation needs the tokenizer's EOS token id")
    key = (id(tokenizer), tuple(eos_ids))
    with _lock:
        if key in _tokenizers:
            _tokenizers.move_to_end(key)
            return _tokenizers[key][1], eos_ids
    backend = hf.backend_tokenizer
    # The same copy llguidance.hf.from_tokenizer makes (no padding or truncation).
    serialized = json.loads(backend.to_str())
    serialized["padding"] = None
    serialized["truncation"] = None
    llg_tokenizer = llguidance.LLTokenizer(json.dumps(serialized), eos_token=eos_ids)
    with _lock:
        _tokenizers[key] = (tokenizer, llg_tokenizer)
        while len(_tokenizers) > _TOKENIZER_CACHE_SIZE:
            _tokenizers.popitem(last=False)
    return llg_tokenizer, eos_ids


def _compile(tokenizer: Any, schema: str, tighten: bool, eos: Iterable[int] | None) -> _Compiled:
    llg_tokenizer, eos_ids = _llg_tokenizer(tokenizer, eos)
    key = (id(tokenizer), tuple(eos_ids), schema, tighten)
    with _lock:
        if key in _compiled:
            _compiled.move_to_end(key)
            return _compiled[key]
    llguidance = _llguidance()
    value = json.loads(schema)
    grammar = llguidance.LLMatcher.grammar_from_json_schema(
        tighten_strings(value) if tighten else value, overrides=_JSON_OPTIONS
    )
    matcher = llguidance.LLMatcher(llg_tokenizer, grammar, log_level=0)
    if matcher.is_error():
        raise ValueError(
            f"cannot compile the JSON schema for constrained generation: {matcher.get_error()}"
        )
    compiled = _Compiled(llg_tokenizer, matcher, eos_ids, llg_tokenizer.vocab_size)
    with _lock:
        _compiled[key] = compiled
        while len(_compiled) > _GRAMMAR_CACHE_SIZE:
            _compiled.popitem(last=False)
    return compiled


class JsonLogitsProcessor:
    """A logits processor for one generation: masks every token that would leave the schema.

    Call it as mlx-lm and mlx-vlm do, ``processor(tokens, logits)``: ``tokens`` holds the
    tokens seen so far (with the prompt, or the part of it not in a prompt cache), ``logits``
    is ``(vocab,)`` or ``(1, vocab)``. The first call fixes where the answer starts; later
    calls consume the new tokens. Not thread-safe, one sequence only (batch size 1).
    """

    def __init__(self, compiled: _Compiled) -> None:
        self._compiled = compiled
        self._matcher = compiled.matcher.deep_copy()
        self._start: int | None = None
        self._consumed = 0
        self._words = (compiled.vocab + 31) // 32

    @property
    def generated_tokens(self) -> int:
        """The tokens of the answer consumed so far (the EOS token included once sampled)."""
        return self._consumed

    @property
    def complete(self) -> bool:
        """Whether the tokens consumed so far make a complete JSON answer.

        mlx-lm and mlx-vlm call processors one step ahead (the call that picks token n+1
        consumes token n before token n is handed back), so after ``generate`` returns this
        covers every token of the answer.
        """
        return not self._matcher.is_error() and (
            self._matcher.is_accepting() or self._matcher.is_stopped()
        )

    def raise_if_cut_off(self, setting: str) -> None:
        """Raise ``InvalidModelOutput`` when the answer ended before its JSON did.

        ``setting`` names the setting that raises the token limit (for example
        ``HYPERLOCAL_TEXT__MAX_TOKENS``). Returns quietly for a complete answer.
        """
        if not self.complete:
            raise InvalidModelOutput(
                f"the answer was cut off at {self._consumed} tokens before its JSON ended: "
                f"raise {setting}"
            )

    def _consume(self, tokens: mx.array) -> None:
        length = int(tokens.shape[-1])
        if self._start is None:
            self._start = length
            return
        new = tokens.reshape(-1)[self._start + self._consumed :].tolist() if length else []
        for token in new:
            if self._matcher.is_stopped() and not self._matcher.is_error():
                # Only reached when the caller keeps going after EOS: nothing more to consume.
                self._consumed += 1
                continue
            if not self._matcher.consume_token(int(token)):
                raise InvalidModelOutput(
                    f"constrained generation left the JSON schema after {self._consumed} "
                    f"tokens (token {int(token)}): {self._matcher.get_error()}"
                )
            self._consumed += 1

    def allowed(self) -> Any:
        """Return the allowed next tokens as a numpy bool array of the tokenizer's width."""
        import numpy as np

        llguidance = _llguidance()
        bitmask = np.zeros((1, self._words), dtype=np.int32)
        if self._matcher.is_stopped():
            allowed = np.zeros(self._compiled.vocab, dtype=bool)
            allowed[self._compiled.eos] = True
            return allowed
        llguidance.numpy.fill_next_token_bitmask(self._matcher, bitmask, 0)
        return np.unpackbits(bitmask.view(np.uint8), bitorder="little")[: self._compiled.vocab]

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        """Consume the new tokens and return ``logits`` with disallowed tokens at ``-inf``.

        Raises ``InvalidModelOutput`` when a consumed token leaves the schema (only possible
        when something after this processor changed the logits, e.g. another processor
        unmasking tokens, or a sampler ignoring ``-inf``), ``ValueError`` for a batch of
        more than one sequence.
        """
        import mlx.core as mx
        import numpy as np

        if logits.ndim == 2 and logits.shape[0] != 1:
            raise ValueError("JsonLogitsProcessor handles one sequence; make one per sequence")
        self._consume(tokens)
        allowed = self.allowed()
        width = int(logits.shape[-1])
        if width != allowed.shape[0]:
            # The model's output width may be padded past the tokenizer's vocabulary.
            fitted = np.zeros(width, dtype=bool)
            keep = min(width, allowed.shape[0])
            fitted[:keep] = allowed[:keep]
            allowed = fitted
        return mx.where(mx.array(allowed.astype(np.bool_)), logits, mx.array(-mx.inf, logits.dtype))


class JsonSchemaConstraint:
    """A JSON schema compiled for one tokenizer; hands out a processor per generation.

    Building one is cheap after the first time: the llguidance tokenizer (about 0.3 s for a
    49k vocabulary) is cached per tokenizer object and the compiled grammar per tokenizer and
    schema, so make one per request without worry.
    """

    def __init__(
        self,
        tokenizer: Any,
        schema: type[BaseModel] | Mapping[str, Any] | str,
        *,
        eos_token_ids: Iterable[int] | None = None,
        tighten: bool = True,
    ) -> None:
        """Compile ``schema`` for ``tokenizer`` (or take it from the cache).

        ``tokenizer`` is mlx-lm's ``TokenizerWrapper``, an mlx-vlm processor or a Hugging
        Face fast tokenizer. ``eos_token_ids`` are the tokens that end the answer (default:
        the wrapper's ``eos_token_ids``, else the tokenizer's EOS); give the ones the
        generation loop stops on. ``tighten`` applies ``tighten_strings``.

        Raises ``BackendNotAvailable`` without llguidance (naming the install command),
        ``ValueError`` for a tokenizer that is not a fast tokenizer, a tokenizer without an
        EOS token, or a schema llguidance cannot compile (unsupported keyword, bad ``$ref``).
        """
        self.schema = schema_json(schema)
        self._compiled = _compile(tokenizer, self.schema, tighten, eos_token_ids)

    @property
    def eos_token_ids(self) -> list[int]:
        """The tokens this constraint allows once the JSON is complete."""
        return list(self._compiled.eos)

    def logits_processor(self) -> JsonLogitsProcessor:
        """Return a fresh processor for one generation (never reuse it for another one)."""
        return JsonLogitsProcessor(self._compiled)

    def accepts(self, text: str) -> bool:
        """Whether ``text`` is a complete answer under this constraint (for tests and checks)."""
        matcher = self._compiled.matcher.deep_copy()
        tokens = self._compiled.llg_tokenizer.tokenize_str(text)
        return matcher.consume_tokens(tokens) and matcher.is_accepting()


LogitsProcessor = Callable[["mx.array", "mx.array"], "mx.array"]
