"""Per-sequence sampler chains, with a grammar where a job has one (:mod:`.output_grammars`).

Every sequence gets its own native sampler chain with its own seeded ``dist`` sampler, so
a fixed seed gives the same text whether or not other requests share the batch.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import llama_cpp as lc
import numpy as np

from power_backend_llamacpp.call_grammar import LateCallGrammar
from power_backend_llamacpp.grammar_gate import GrammarGate
from power_backend_llamacpp.vocab import Vocabulary
from power_core.engine import CallBlocks, FreeSpan
from power_core.errors import InvalidRequest
from power_core.types import SamplingOptions


class SamplerChain:
    """A native ``llama_sampler`` chain owned by one sequence; call :meth:`free` once.

    A grammar, when there is one, is kept out of the chain: applying it to the whole
    vocabulary costs far more than a forward pass of a small model, so a token is first
    sampled without it and only if the grammar rejects that token is the grammar applied to
    every candidate and the token sampled again (as llama.cpp's own ``common_sampler`` does).
    """

    __slots__ = (
        "_calls",
        "_candidates",
        "_gate",
        "_grammar",
        "_n_vocab",
        "_one",
        "_piece",
        "_row_type",
        "handle",
    )

    def __init__(
        self,
        vocab: Vocabulary,
        options: SamplingOptions,
        *,
        seed: int,
        grammar: str | None,
        history: list[int],
        free_span: FreeSpan | None = None,
        call_blocks: CallBlocks | None = None,
    ) -> None:
        params = lc.llama_sampler_chain_default_params()
        params.no_perf = True
        self.handle = lc.llama_sampler_chain_init(params)
        self._grammar: Any = None
        self._candidates: _Candidates | None = None
        self._one: _Candidates | None = None
        #: set for plain greedy decoding, which is an argmax over the logits row; llama.cpp's
        #: greedy sampler would first copy the whole vocabulary into a candidate array
        self._row_type: Any = None
        #: while the output is in the job's free span, tokens are sampled without the grammar
        self._gate = GrammarGate(free_span) if free_span and grammar is not None else None
        #: a grammar of tool calls, compiled when the output opens one: until then the
        #: choice samples as one without a grammar
        self._calls: LateCallGrammar | None = None
        if call_blocks is not None and grammar is not None:
            self._calls = LateCallGrammar(call_blocks, grammar, vocab)
            grammar = None
        self._piece = vocab.piece
        self._n_vocab = vocab.n_vocab
        try:
            self._build(vocab, options, seed, grammar, history)
        except BaseException:
            self.free()
            raise
        plain = not options.logit_bias and grammar is None
        no_penalty = (options.repeat_penalty, options.presence_penalty) == (1.0, 0.0)
        if options.temperature <= 0.0 and plain and no_penalty and not options.frequency_penalty:
            self._row_type = ctypes.POINTER(ctypes.c_float * vocab.n_vocab)

    def _add(self, sampler: Any) -> None:
        lc.llama_sampler_chain_add(self.handle, sampler)

    def _build(
        self,
        vocab: Vocabulary,
        o: SamplingOptions,
        seed: int,
        grammar: str | None,
        history: list[int],
    ) -> None:
        n_vocab = vocab.n_vocab
        if o.logit_bias:
            vocab.check_tokens(list(o.logit_bias), param="logit_bias")
            biases: Any = (lc.llama_logit_bias * len(o.logit_bias))()
            for i, (token, bias) in enumerate(o.logit_bias.items()):
                biases[i].token = token
                biases[i].bias = bias
            self._add(lc.llama_sampler_init_logit_bias(n_vocab, len(o.logit_bias), biases))
        last_n = o.repeat_last_n if o.repeat_last_n >= 0 else -1
        penalized = o.repeat_penalty != 1.0 or o.presence_penalty or o.frequency_penalty
        if penalized and last_n != 0:
            keep = 1 if o.temperature <= 0.0 else o.top_k
            lowers = o.repeat_penalty >= 1.0 and min(o.presence_penalty, o.frequency_penalty) >= 0
            if keep > 0 and last_n > 0 and lowers:
                # Penalties scan every candidate, which costs more than the rest of the chain.
                # They only lower the logits of at most last_n tokens, so the best `keep`
                # after them are among the best `keep + last_n` before them: cutting to
                # those first gives exactly the same candidates, far cheaper.
                self._add(lc.llama_sampler_init_top_k(keep + last_n))
            penalties = lc.llama_sampler_init_penalties(
                n_vocab, last_n, o.repeat_penalty, o.frequency_penalty, o.presence_penalty
            )
            self._add(penalties)
            # the prompt counts as history for repetition, as in llama.cpp's server
            window = history if last_n < 0 else history[len(history) - last_n :]
            for token in window:
                lc.llama_sampler_accept(penalties, token)
        if grammar is not None:
            compiled = lc.llama_sampler_init_grammar(vocab.handle, grammar.encode(), b"root")
            if not compiled:
                raise InvalidRequest("the output grammar could not be compiled", param="format")
            self._grammar = compiled
        if o.temperature <= 0.0:
            self._add(lc.llama_sampler_init_greedy())
            return
        if o.top_k > 0:
            self._add(lc.llama_sampler_init_top_k(o.top_k))
        if 0.0 < o.typical_p < 1.0:
            self._add(lc.llama_sampler_init_typical(o.typical_p, 1))
        if o.top_p < 1.0:  # 0 keeps the likeliest token alone, as llama.cpp and OpenAI read it
            self._add(lc.llama_sampler_init_top_p(max(o.top_p, 0.0), 1))
        if o.min_p > 0.0:
            self._add(lc.llama_sampler_init_min_p(o.min_p, 1))
        self._add(lc.llama_sampler_init_temp(o.temperature))
        self._add(lc.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def sample(self, ctx: Any, index: int) -> int:
        """Choose (and accept) the next token from batch output ``index``."""
        if self._grammar is None:
            if self._row_type is not None:
                row = ctypes.cast(lc.llama_get_logits_ith(ctx, index), self._row_type).contents
                # argmax returns the first maximum, as llama.cpp's greedy sampler does
                token = int(np.frombuffer(row, dtype=np.float32).argmax())
            else:
                token = int(lc.llama_sampler_sample(self.handle, ctx, index))
            if self._calls is not None:
                self._watch_for_call(token)
            return token
        row = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, index), (self._n_vocab,))
        return self.sample_row(row)

    def sample_row(self, logits: np.ndarray) -> int:
        """Choose (and accept) the next token from a row of ``logits``, by the grammar
        where it decides (the path of a job with a grammar; any job's, in tests)."""
        candidates = self._candidates
        if candidates is None:
            # allocated on first use, so queued jobs hold no vocabulary-sized buffers
            candidates = self._candidates = _Candidates(len(logits))
        token = candidates.choose(self.handle, logits)
        if self._grammar is None:
            lc.llama_sampler_accept(self.handle, token)
            if self._calls is not None:
                self._watch_for_call(token)
            return token
        if self._gate is not None:
            if self._gate.passes(self._piece(token)):
                lc.llama_sampler_accept(self.handle, token)
                return token
            self._gate = None  # the answer starts with this token: the grammar decides it
        if not self._allows(self._grammar, token):  # sample again under the grammar
            candidates.load(logits)
            lc.llama_sampler_apply(self._grammar, candidates.ref)
            token = candidates.choose(self.handle, None)
        lc.llama_sampler_accept(self._grammar, token)
        lc.llama_sampler_accept(self.handle, token)
        return token

    def _watch_for_call(self, token: int) -> None:
        """After an output token: the grammar of calls starts once it opens one."""
        calls = self._calls
        if calls is not None and calls.watch(self._piece(token)):
            self._calls = None
            self._grammar = calls.start(self._allows)

    def _allows(self, grammar: Any, token: int) -> bool:
        """Whether ``grammar`` accepts ``token`` next (its logit itself does not matter)."""
        one = self._one
        if one is None:
            one = self._one = _Candidates(1)
        one.load_single(token, 0.0)
        lc.llama_sampler_apply(grammar, one.ref)
        return not math.isinf(one.data.logit[0])

    def free(self) -> None:
        if self.handle:
            lc.llama_sampler_free(self.handle)
            self.handle = None
        if self._grammar:
            lc.llama_sampler_free(self._grammar)
            self._grammar = None


class _Candidates:
    """A reusable ``llama_token_data_array`` over a numpy buffer."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.data = np.recarray(
            (n,),
            dtype=np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True),
        )
        self._ids = np.arange(n, dtype=np.intc)
        self.array: Any = lc.llama_token_data_array(
            data=self.data.ctypes.data_as(lc.llama_token_data_p), size=n, selected=-1, sorted=False
        )
        self.ref = ctypes.byref(self.array)

    def load(self, logits: Any) -> None:
        """Every token with its logit, unsorted, nothing selected."""
        self.data.id[:] = self._ids
        self.data.logit[:] = logits
        self.data.p[:] = 0.0
        self._reset(self.n)

    def load_single(self, token: int, logit: float) -> None:
        self.data[0] = (token, logit, 0.0)
        self._reset(1)

    def _reset(self, size: int) -> None:
        self.array.data = self.data.ctypes.data_as(lc.llama_token_data_p)
        self.array.size = size
        self.array.selected = -1
        self.array.sorted = False

    def choose(self, chain: Any, logits: Any) -> int:
        """Run ``chain`` over the candidates (loading ``logits`` first unless ``None``)."""
        if logits is not None:
            self.load(logits)
        lc.llama_sampler_apply(chain, self.ref)
        # samplers may point ``data`` at their own buffer, so read through the struct
        return int(self.array.data[self.array.selected].id)
