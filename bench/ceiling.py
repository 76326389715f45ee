"""Batched-decode ceiling: what the installed llama.cpp does with 8 sequences and no server.

8 prompts prefilled in one batch, then 128 greedy steps of one token per sequence, through
llama-cpp-python's low-level API with the same context settings as our backend (one KV
stream per sequence). Run twice per repetition: with the batch listing sequences in
ascending id order, and in descending order. The 8-client aggregate of any server built on
this library is bounded by the ascending figure; a server that lets the order drift gets
the descending one (llama.cpp splits such a batch, and throughput roughly halves).
Runs in a child process so the model never loads into the benchmark client.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from bench.fleet import Fleet, quiet_pause
from bench.noise import QUIET_CORES, CpuMeter
from bench.report import REPO_ROOT, num, save_result, table
from bench.servers import worker_parser
from bench.stats import Summary
from bench.workload import CONCURRENT_TOKENS, concurrent_prompts

NAME = "ceiling"
SEQUENCES = 8


def _worker(args: argparse.Namespace) -> None:
    import ctypes

    import llama_cpp as lc
    import numpy as np

    silence = lc.llama_log_callback(lambda level, text, data: None)
    lc.llama_log_set(silence, ctypes.c_void_p(0))
    lc.llama_backend_init()
    params = lc.llama_model_default_params()
    params.use_extra_bufts = args.extra_buffers
    model = lc.llama_model_load_from_file(args.model.encode(), params)
    n = SEQUENCES
    cparams = lc.llama_context_default_params()
    cparams.n_ctx, cparams.n_seq_max, cparams.kv_unified = args.num_ctx * n, n, False
    cparams.n_batch = cparams.n_ubatch = 512
    cparams.n_threads = cparams.n_threads_batch = args.threads
    ctx = lc.llama_init_from_model(model, cparams)
    vocab = lc.llama_model_get_vocab(model)
    n_vocab = lc.llama_vocab_n_tokens(vocab)
    batch = lc.llama_batch_init(512, 0, n)
    memory = lc.llama_get_memory(ctx)

    def greedy(index: int) -> int:
        # an argmax over the logits row, as our engine samples greedy decoding (llama.cpp's
        # greedy sampler first copies the whole vocabulary into a candidate array)
        row = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, index), shape=(n_vocab,))
        return int(row.argmax())

    def tokens(text: str) -> list[int]:
        data = text.encode()
        out = (lc.llama_token * 512)()
        count = lc.llama_tokenize(vocab, data, len(data), out, 512, False, True)
        return list(out[:count])

    def put(i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, logits

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        prompts = [tokens(p) for p in request["prompts"]]
        seqs = list(range(n)) if request["order"] == "ascending" else list(range(n))[::-1]
        lc.llama_memory_clear(memory, True)
        start = time.perf_counter()
        k, outputs = 0, []
        for s, prompt in enumerate(prompts):
            for j, token in enumerate(prompt):
                put(k, token, j, seqs[s], j == len(prompt) - 1)
                k += 1
            outputs.append(k - 1)
        batch.n_tokens = k
        assert lc.llama_decode(ctx, batch) == 0
        last = [greedy(outputs[s]) for s in range(n)]
        first = time.perf_counter() - start
        positions = [len(p) for p in prompts]
        for _ in range(request["tokens"] - 1):
            for s in range(n):
                put(s, last[s], positions[s], seqs[s], True)
                positions[s] += 1
            batch.n_tokens = n
            assert lc.llama_decode(ctx, batch) == 0
            last = [greedy(s) for s in range(n)]
        elapsed = time.perf_counter() - start
        print(
            json.dumps({"tokens_per_s": n * request["tokens"] / elapsed, "prefill_s": first}),
            flush=True,
        )


def run(fleet: Fleet) -> dict[str, Any]:
    config = fleet.config
    reps = config.repetitions(full=3, quick=1)
    print(
        f"== ceiling: {SEQUENCES} sequences x {CONCURRENT_TOKENS} tokens, no server, {reps} reps",
        flush=True,
    )
    worker = subprocess.Popen(
        config.worker_command("bench.ceiling", "--worker"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert worker.stdin is not None and worker.stdout is not None
    meter = CpuMeter(lambda: [worker.pid, *fleet.pids()])
    samples: dict[str, list[dict[str, Any]]] = {"ascending": [], "descending": []}
    try:
        if json.loads(worker.stdout.readline()).get("ready") is not True:
            raise RuntimeError("ceiling worker failed to start")
        for rep in range(reps):
            for order in (
                ("ascending", "descending") if rep % 2 == 0 else ("descending", "ascending")
            ):
                quiet_pause(fleet)
                request = {
                    "prompts": concurrent_prompts(SEQUENCES, rep),
                    "order": order,
                    "tokens": CONCURRENT_TOKENS,
                }

                def once(request: dict[str, Any] = request) -> dict[str, Any]:
                    assert worker.stdin is not None and worker.stdout is not None
                    worker.stdin.write(json.dumps(request) + "\n")
                    worker.stdin.flush()
                    reply: dict[str, Any] = json.loads(worker.stdout.readline())
                    return reply

                reply, others = meter.measure(once)
                reply["others_cores"] = others
                samples[order].append(reply)
                print(
                    f"  rep {rep + 1}/{reps} {order}: {reply['tokens_per_s']:.1f} tok/s, "
                    f"prefill {reply['prefill_s'] * 1000:.0f} ms (others {others:.2f} cores)",
                    flush=True,
                )
    finally:
        worker.stdin.close()
        worker.wait(timeout=30)
    summary: dict[str, Any] = {}
    rows = []
    for order, values in samples.items():
        rate = Summary.of([v["tokens_per_s"] for v in values])
        prefill = Summary.of([v["prefill_s"] for v in values])
        summary[order] = {
            "tokens_per_s": rate.as_dict(),
            "prefill_s": prefill.as_dict(),
            "samples": values,
        }
        rows.append([order, rate.spread(1), prefill.spread(0, 1000)])
    slow = Summary.of(
        [
            d["tokens_per_s"] / a["tokens_per_s"]
            for a, d in zip(samples["ascending"], samples["descending"], strict=True)
        ]
    )
    summary["descending_over_ascending"] = slow.as_dict()
    print(
        table(
            f"Batched decode without a server, {SEQUENCES} sequences, median (min-max) of "
            f"{reps} (quiet = others < {QUIET_CORES} cores; see JSON)",
            ["sequence order in the batch", "aggregate tok/s", "prefill of 8 prompts ms"],
            rows,
        ),
        flush=True,
    )
    return save_result(
        NAME,
        summary,
        fleet=fleet.describe(),
        reps=reps,
        sequences=SEQUENCES,
        max_tokens=CONCURRENT_TOKENS,
    )


def headline(result: dict[str, Any]) -> list[list[str]]:
    asc = result["results"]["ascending"]["tokens_per_s"]["median"]
    ratio = result["results"]["descending_over_ascending"]["median"]
    return [
        [
            "ceiling",
            "8 sequences, no server: aggregate tok/s (ascending ids)",
            num(asc, 1),
            "-",
            "info",
        ],
        ["ceiling", "same, descending ids / ascending ids", num(ratio), "-", "info"],
    ]


def main() -> None:
    parser = worker_parser("python -m bench.ceiling")
    parser.add_argument("--worker", action="store_true", required=True)
    _worker(parser.parse_args())


if __name__ == "__main__":
    main()
