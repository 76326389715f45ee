"""19. Embeddings: the latency of one short input and of a batch of short inputs, through
``/api/embed`` and ``/v1/embeddings``, at the run's context and at a long one.

Baseline, same run: llama-cpp-python's ``Llama.embed`` in-process (:mod:`bench.inprocess_embed`),
mean-pooled, at the same context. Peer: ``llama-server --embeddings --pooling mean``. Each
round sends every target the same inputs in turn (each round its own sentences) and keeps
each target's median; the figures are the medians of the rounds and the in-process
latency over each target's, paired by round (above 1: faster than in-process).

Until ``17c5209``, ours made its embedding context at ``num_ctx`` and wiped all of it after
every decode, so a short input cost more the longer the context (as llama-cpp-python's
``Llama.embed`` still does); this measures that it no longer does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from statistics import median
from typing import Any

import httpx

from bench.fleet import Fleet, quiet_pause
from bench.inprocess_embed import InProcessEmbedder
from bench.report import num, save_result, table
from bench.servers import MODEL_NAME
from bench.stats import Summary, paired_ratios
from bench.workload import rotated

NAME = "embed"
#: the long context, against the run's own (2,048): what a model made for long inputs or a
#: chat model loaded for long conversations gets
LONG_CONTEXT = 8192
#: one-input requests per target and round
SINGLES = 20
#: inputs of a batch request, and batch requests per target and round
BATCH = 32
BATCHES = 3
IN_PROCESS = InProcessEmbedder.label


def sentence(rep: int, index: int) -> str:
    return f"Note {rep}-{index}: the river runs past the old mill at dawn."


@dataclass
class Rounds:
    """Each round's median latency of one target, for one input and for a batch."""

    single: list[float] = field(default_factory=list)
    batch: list[float] = field(default_factory=list)


def http_embedder(client: httpx.Client, url: str, path: str) -> Callable[[list[str]], float]:
    def embed(inputs: list[str]) -> float:
        start = time.perf_counter()
        reply = client.post(url + path, json={"model": MODEL_NAME, "input": inputs})
        taken = time.perf_counter() - start
        reply.raise_for_status()
        body = reply.json()
        vectors = body.get("embeddings") or body.get("data") or []
        if len(vectors) != len(inputs):
            raise RuntimeError(f"{url}{path}: {len(inputs)} inputs gave {len(vectors)} vectors")
        return taken

    return embed


def measure_context(fleet: Fleet, num_ctx: int, reps: int) -> dict[str, Rounds]:
    """Every target's rounds at ``num_ctx``."""
    ours = fleet.power_with_context(num_ctx)
    peer = fleet.llama_server_embeddings(num_ctx)
    print(f"  starting the in-process Llama.embed at num_ctx {num_ctx} ...", flush=True)
    baseline = InProcessEmbedder(replace(fleet.config, num_ctx=num_ctx))
    client = httpx.Client(timeout=120)
    targets: dict[str, Callable[[list[str]], float]] = {
        IN_PROCESS: baseline.embed,
        "a3s-power /api/embed": http_embedder(client, ours.url, "/api/embed"),
        "a3s-power /v1/embeddings": http_embedder(client, ours.url, "/v1/embeddings"),
    }
    if peer is not None:
        targets["llama-server /v1/embeddings"] = http_embedder(client, peer.url, "/v1/embeddings")
    rounds = {label: Rounds() for label in targets}
    try:
        for embed in targets.values():  # the first embedding makes each one's context
            embed(["warm up"])
        for rep in range(reps):
            for label in rotated(list(targets), rep):
                embed = targets[label]
                quiet_pause(fleet, max_wait=5)
                singles = [embed([sentence(rep, i)]) for i in range(SINGLES)]
                batches = [
                    embed([sentence(rep, b * BATCH + i) for i in range(BATCH)])
                    for b in range(BATCHES)
                ]
                rounds[label].single.append(median(singles))
                rounds[label].batch.append(median(batches))
            print(
                f"  num_ctx {num_ctx}, rep {rep + 1}/{reps}: "
                + ", ".join(
                    f"{label} {r.single[-1] * 1000:.1f}/{r.batch[-1] * 1000:.0f} ms"
                    for label, r in rounds.items()
                ),
                flush=True,
            )
    finally:
        client.close()
        baseline.close()
    return rounds


def figures(rounds: dict[str, Rounds]) -> dict[str, Any]:
    """Each target's medians, and its speed over in-process paired by round."""
    base = rounds[IN_PROCESS]
    return {
        label: {
            "single_s": Summary.of(r.single).as_dict(),
            "batch_s": Summary.of(r.batch).as_dict(),
            # above 1: faster than in-process
            "single_speed_over_in_process": Summary.of(
                paired_ratios(base.single, r.single)
            ).as_dict(),
            "batch_speed_over_in_process": Summary.of(paired_ratios(base.batch, r.batch)).as_dict(),
            "rounds": {"single_s": r.single, "batch_s": r.batch},
        }
        for label, r in rounds.items()
    }


def spread(summary: dict[str, Any], digits: int) -> str:
    return Summary(**summary).spread(digits, 1000)


def run(fleet: Fleet) -> dict[str, Any]:
    reps = fleet.config.repetitions(full=5, quick=2)
    contexts = (fleet.config.num_ctx, LONG_CONTEXT)
    print(
        f"== embed: {SINGLES} one-input requests and {BATCHES} of {BATCH} inputs per target "
        f"and round, num_ctx {' and '.join(map(str, contexts))}, {reps} reps",
        flush=True,
    )
    results: dict[str, Any] = {}
    for num_ctx in contexts:
        by_label = results[str(num_ctx)] = figures(measure_context(fleet, num_ctx, reps))
        print(
            table(
                f"Embeddings at num_ctx {num_ctx}, ms, median (min-max) of {reps} rounds; "
                "speed over in-process paired by round",
                [
                    "target",
                    "1 input",
                    "speed / in-process",
                    f"{BATCH} inputs",
                    "speed / in-process",
                ],
                [
                    [
                        label,
                        spread(f["single_s"], 2),
                        num(f["single_speed_over_in_process"]["median"]),
                        spread(f["batch_s"], 1),
                        num(f["batch_speed_over_in_process"]["median"]),
                    ]
                    for label, f in by_label.items()
                ],
            ),
            flush=True,
        )
    return save_result(
        NAME,
        results,
        fleet=fleet.describe(),
        singles=SINGLES,
        batch=BATCH,
        batches=BATCHES,
        contexts=list(contexts),
    )


def headline(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for num_ctx, by_label in result["results"].items():
        for label in ("a3s-power /api/embed", "a3s-power /v1/embeddings"):
            figures = by_label.get(label)
            if not figures:
                continue
            for kind, inputs in (("single", "1 input"), ("batch", f"{BATCH} inputs")):
                ratio = figures[f"{kind}_speed_over_in_process"]["median"]
                figure = f"{label}, {inputs}, num_ctx {num_ctx}: speed / in-process"
                rows.append([NAME, figure, num(ratio), "-", "info"])
        peer = by_label.get("llama-server /v1/embeddings")
        ours = by_label.get("a3s-power /v1/embeddings")
        if peer and ours:
            single = peer["single_s"]["median"] / ours["single_s"]["median"]
            figure = f"a3s-power /v1/embeddings, 1 input, num_ctx {num_ctx}: speed / llama-server"
            rows.append([NAME, figure, num(single), "-", "info"])
    return rows
