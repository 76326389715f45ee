"""GPU offload (``python -m bench gpu_offload``, where llama.cpp was built with a GPU
backend; not part of ``all``): what ``num_gpu`` does on a real GPU.

One server of ours, its model loaded four ways in turn by a request's ``num_gpu``: 0 (the
CPU alone: the baseline, in the same run), unset (as many layers as fit: all of them
here), and half the layers. For each: greedy decode tokens/s of 256 tokens through
``/api/generate`` (the server's own ``eval_count / eval_duration``), ``/api/ps``'s
``size`` and ``size_vram``, and the GPU memory the load took as the driver reports it
(free memory before the load less after it: weights, KV cache, compute buffers and the
server's CUDA context, where ``size_vram`` estimates the first two).

Then the fit: this process takes all but a few GiB of the GPU (``torch``, where it is
installed) and the server loads the model with a context whose KV cache cannot fit there.
Unset ``num_gpu`` must load it partly offloaded and answer; ``num_gpu`` forcing every
layer onto the GPU is shown for comparison.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from bench.fleet import Fleet
from bench.report import save_result, table
from bench.servers import MODEL_NAME, PowerServer
from bench.stats import Summary

NAME = "gpu_offload"
TOKENS = 256
#: free GPU memory left for the fit, and the context asked for there (per sequence; the
#: server's 8 sequences make its KV cache 8 x 32,768 cells: 6 GiB of f16 for SmolLM2)
LEFT_FREE = 3 * 2**30
LONG_CONTEXT = 32768
PROMPT = "Once upon a time, in a land far away,"


def _gpu_free() -> int:
    from power_backend_llamacpp.devices import list_gpus

    return sum(gpu.free_bytes for gpu in list_gpus())


def _generate(server: PowerServer, options: dict[str, Any], prompt: str) -> dict[str, Any]:
    body = {
        "model": MODEL_NAME,
        "prompt": prompt,
        "raw": True,
        "stream": False,
        "keep_alive": -1,
        "options": {
            "num_predict": TOKENS,
            "temperature": 0,
            "repeat_penalty": 1.0,
            **options,
        },
    }
    response = httpx.post(server.url + "/api/generate", json=body, timeout=600)
    if response.status_code != 200:
        return {"status": response.status_code, "error": response.text[:500]}
    answer = response.json()
    ps = httpx.get(server.url + "/api/ps", timeout=30).json()["models"]
    entry = next(model for model in ps if model["name"] == MODEL_NAME)
    return {
        "status": 200,
        "tokens_per_s": answer["eval_count"] / (answer["eval_duration"] / 1e9),
        "eval_count": answer["eval_count"],
        "size": entry["size"],
        "size_vram": entry["size_vram"],
        "text": answer["response"],
    }


def _unload(server: PowerServer) -> None:
    httpx.post(
        server.url + "/api/generate", json={"model": MODEL_NAME, "keep_alive": 0}, timeout=60
    )
    time.sleep(1.0)


def _load_and_measure(server: PowerServer, options: dict[str, Any], prompt: str) -> dict[str, Any]:
    """Unload, note the free memory, load with ``options`` and decode; the memory the load
    took is what the driver reports free before less after."""
    _unload(server)
    before = _gpu_free()
    sample = _generate(server, options, prompt)
    sample["gpu_memory_taken"] = before - _gpu_free()
    return sample


def run(fleet: Fleet) -> dict[str, Any]:
    from power_backend_llamacpp.devices import describe, list_gpus

    gpus = list_gpus()
    if not gpus:
        print("== gpu_offload: llama.cpp offloads to no GPU here; nothing to measure", flush=True)
        return save_result(NAME, {"gpus": []})
    config = fleet.config
    reps = config.repetitions(full=3, quick=1)
    print(f"== gpu_offload: {', '.join(describe(gpu) for gpu in gpus)}, {reps} reps", flush=True)
    server = fleet.power()
    layers = 30  # SmolLM2-135M's blocks; "half" offloads 15 of them
    ways = {"num_gpu 0 (CPU)": {"num_gpu": 0}, "num_gpu unset": {}, "num_gpu 15": {"num_gpu": 15}}
    samples: dict[str, list[dict[str, Any]]] = {label: [] for label in ways}
    for rep in range(reps):
        for label, options in ways.items():
            # one prompt for every load (a load starts with an empty cache), so that the
            # answers can be compared with the CPU's
            sample = _load_and_measure(server, options, PROMPT)
            samples[label].append(sample)
            shown = {key: value for key, value in sample.items() if key != "text"}
            print(f"  rep {rep + 1}/{reps} {label}: {json.dumps(shown)}", flush=True)
    rows = []
    summary: dict[str, Any] = {"gpus": [describe(gpu) for gpu in gpus], "ways": {}}
    base = Summary.of([s.get("tokens_per_s", float("nan")) for s in samples["num_gpu 0 (CPU)"]])
    for label, values in samples.items():
        rate = Summary.of([s.get("tokens_per_s", float("nan")) for s in values])
        last = values[-1]
        same = _same_words(last.get("text", ""), samples["num_gpu 0 (CPU)"][-1].get("text", ""))
        summary["ways"][label] = {"samples": values, "tokens_per_s": rate.as_dict()}
        rows.append(
            [
                label,
                rate.spread(1),
                f"{rate.median / base.median:.2f}",
                f"{last.get('size', 0) / 2**20:.0f}",
                f"{last.get('size_vram', 0) / 2**20:.0f}",
                f"{last.get('gpu_memory_taken', 0) / 2**20:.0f}",
                same,
            ]
        )
    print(
        table(
            f"Decode of {TOKENS} tokens on {gpus[0].description}, {layers} layers, "
            f"median (min-max) of {reps}",
            [
                "load",
                "tokens/s",
                "/ CPU",
                "size MiB",
                "size_vram MiB",
                "GPU memory taken MiB",
                "words as the CPU's",
            ],
            rows,
        ),
        flush=True,
    )
    summary["fit"] = _fit(server)
    return save_result(NAME, summary, reps=reps, tokens=TOKENS)


def _fit(server: PowerServer) -> dict[str, Any]:
    """Fill the GPU but for :data:`LEFT_FREE`, then load a context that cannot fit."""
    try:
        import torch
    except ImportError:
        print("  fit: torch is not installed; not measured", flush=True)
        return {"measured": False}
    _unload(server)
    free = _gpu_free()
    hold = torch.empty(max(0, free - LEFT_FREE), dtype=torch.uint8, device="cuda")
    result: dict[str, Any] = {"left_free": _gpu_free(), "num_ctx": LONG_CONTEXT}
    try:
        for label, options in (
            ("num_gpu unset", {"num_ctx": LONG_CONTEXT}),
            ("num_gpu 31 (every layer)", {"num_ctx": LONG_CONTEXT, "num_gpu": 31}),
        ):
            sample = _load_and_measure(server, options, PROMPT)
            result[label] = sample
            print(f"  fit, {label}: {json.dumps(sample)[:600]}", flush=True)
    finally:
        del hold
        torch.cuda.empty_cache()
    return result


def _same_words(text: str, reference: str) -> str:
    """How many of the first words match the reference answer's, of how many."""
    words, expected = text.split(), reference.split()
    same = 0
    for word, other in zip(words, expected, strict=False):
        if word != other:
            break
        same += 1
    return f"{same} of {len(expected)}"


def headline(result: dict[str, Any]) -> list[list[str]]:
    ways = result["results"].get("ways", {})
    if not ways:
        return [["gpu_offload", "no GPU", "n/a", "-", "info"]]
    cpu = ways["num_gpu 0 (CPU)"]["tokens_per_s"]["median"]
    gpu = ways["num_gpu unset"]["tokens_per_s"]["median"]
    return [["gpu_offload", "decode, all layers on the GPU / CPU", f"{gpu / cpu:.2f}", "-", "info"]]
