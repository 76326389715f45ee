"""The child process of :mod:`power_backend_llamacpp.extra_buffers`: one trial of llama.cpp's
extra CPU weight buffers (repacked, AMX) on a tiny model written here.

``python -m power_backend_llamacpp.extra_buffers_probe FOLDER`` writes a one-layer llama
model with Q4_0, Q4_1 and Q8_0 weights into ``FOLDER``, decodes a batch of tokens and then
one more token (the matrix and the vector kernels) with the plain weight buffers and then
with the extra ones, and writes ``same`` (exit status 0) or ``different`` (1) to
``FOLDER/verdict`` (after ``plain buffers done`` once the plain run has passed); any
other failure exits with 2 and leaves no verdict. A build whose
kernels fault ends by a signal instead, which is why this runs in a child.
"""

from __future__ import annotations

import ctypes
import faulthandler
import itertools
import sys
import traceback
from pathlib import Path
from typing import Any

#: sizes the AMX kernels take (output rows a multiple of 32, inputs of the 32-weight block)
_EMBED = 128
_FEED_FORWARD = 256
_VOCAB = 256
_HEADS = 4
#: a batch with whole and partial 32-row tiles, so that the matrix kernels run; then one
#: token, which takes the vector path
_BATCH = 48
_QUANT_TYPES = ("Q4_0", "Q4_1", "Q8_0")
#: the file in FOLDER that receives the verdict: PLAIN_DONE once the plain buffers have
#: decoded, then "same" or "different"
VERDICT_FILE = "verdict"
PLAIN_DONE = "plain buffers done"
#: the two paths quantize activations alike; only the order of sums may differ
_TOLERANCE = 1e-3


def write_probe_model(path: Path, embed: int = _EMBED, heads: int = _HEADS) -> Path:
    """A one-layer llama model with random Q4_0, Q4_1 and Q8_0 weights and a 256-token
    vocabulary; ``embed`` (a multiple of 32) values in ``heads`` heads."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(7)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(embed)
    writer.add_block_count(1)
    writer.add_feed_forward_length(_FEED_FORWARD)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(embed // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(["<unk>", "<s>", "</s>", *(f"t{i}" for i in range(3, _VOCAB))])
    writer.add_token_scores([0.0] * _VOCAB)
    writer.add_token_types([2, 3, 3, *([1] * (_VOCAB - 3))])

    kinds = itertools.cycle(gguf.GGMLQuantizationType[name] for name in _QUANT_TYPES)

    def dense(name: str, rows: int, columns: int) -> None:
        weights = rng.normal(0.0, 0.5, size=(rows, columns)).astype(np.float32)
        kind = next(kinds)
        writer.add_tensor(name, gguf.quants.quantize(weights, kind), raw_dtype=kind)

    def norm(name: str) -> None:
        writer.add_tensor(name, np.ones(embed, dtype=np.float32))

    writer.add_tensor(
        "token_embd.weight", rng.normal(0.0, 1.0, size=(_VOCAB, embed)).astype(np.float32)
    )
    norm("output_norm.weight")
    dense("output.weight", _VOCAB, embed)
    norm("blk.0.attn_norm.weight")
    for part in ("q", "k", "v", "output"):
        dense(f"blk.0.attn_{part}.weight", embed, embed)
    norm("blk.0.ffn_norm.weight")
    dense("blk.0.ffn_gate.weight", _FEED_FORWARD, embed)
    dense("blk.0.ffn_up.weight", _FEED_FORWARD, embed)
    dense("blk.0.ffn_down.weight", embed, _FEED_FORWARD)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def trial_logits(path: Path, extra_buffers: bool) -> list[list[float]]:
    """The logits of every position of one batch of ``_BATCH`` tokens, then of one more."""
    import llama_cpp as lc

    model_params = lc.llama_model_default_params()
    model_params.use_extra_bufts = extra_buffers
    model_params.n_gpu_layers = 0  # the CPU's kernels are on trial, not a GPU's
    model = lc.llama_model_load_from_file(str(path).encode(), model_params)
    if not model:
        raise RuntimeError(f"llama.cpp could not load {path}")
    ctx_params = lc.llama_context_default_params()
    ctx_params.n_ctx = 64
    ctx_params.n_batch = ctx_params.n_ubatch = _BATCH
    ctx_params.n_threads = ctx_params.n_threads_batch = 2
    ctx = lc.llama_init_from_model(model, ctx_params)
    batch: Any = lc.llama_batch_init(_BATCH, 0, 1)
    try:
        if not ctx:
            raise RuntimeError("llama.cpp could not create a context")
        rows = _decode(lc, ctx, batch, range(_BATCH))
        return rows + _decode(lc, ctx, batch, range(_BATCH, _BATCH + 1))
    finally:
        lc.llama_batch_free(batch)
        if ctx:
            lc.llama_free(ctx)
        lc.llama_model_free(model)


def _decode(lc: Any, ctx: Any, batch: Any, positions: range) -> list[list[float]]:
    for i, position in enumerate(positions):
        batch.token[i] = 3 + (position * 37) % (_VOCAB - 3)
        batch.pos[i] = position
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = True
    batch.n_tokens = len(positions)
    if lc.llama_decode(ctx, batch) != 0:
        raise RuntimeError("llama_decode failed")
    rows = []
    for i in range(len(positions)):
        logits = ctypes.cast(lc.llama_get_logits_ith(ctx, i), ctypes.POINTER(ctypes.c_float))
        rows.append(logits[:_VOCAB])
    return rows


def same_logits(plain: list[list[float]], extra: list[list[float]]) -> bool:
    """Whether ``extra`` matches ``plain`` within the tolerance, relative to the largest."""
    scale = max(abs(value) for row in plain for value in row) or 1.0
    return all(
        abs(a - b) <= _TOLERANCE * scale
        for row_plain, row_extra in zip(plain, extra, strict=True)
        for a, b in zip(row_plain, row_extra, strict=True)
    )


#: the log callback must outlive every native call that may log
_log_callback: Any = None


def _silence_llama_cpp() -> None:
    global _log_callback
    import llama_cpp as lc

    _log_callback = lc.llama_log_callback(lambda _level, _text, _user_data: None)
    lc.llama_log_set(_log_callback, ctypes.c_void_p(0))
    lc.llama_backend_init()


def main(argv: list[str]) -> int:
    """Exit status: 0 same logits, 1 different, 2 a failure before a verdict."""
    if len(argv) != 2:
        print("usage: python -m power_backend_llamacpp.extra_buffers_probe FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[1])
    # a crash is reported on stderr too, for a parent whose child watcher took the status
    faulthandler.enable()
    # the verdict goes to a file: the parent may not get the exit status (a server's child
    # watcher can reap the process first), and output may interleave with llama.cpp's
    verdict = folder / VERDICT_FILE
    try:
        _silence_llama_cpp()
        model = write_probe_model(folder / "probe.gguf")
        plain = trial_logits(model, False)
        # a crash from here on is the extra buffers' (before, it would be no verdict)
        verdict.write_text(PLAIN_DONE, encoding="utf-8")
        same = same_logits(plain, trial_logits(model, True))
    except Exception:
        traceback.print_exc()
        verdict.unlink(missing_ok=True)
        return 2
    verdict.write_text("same" if same else "different", encoding="utf-8")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
