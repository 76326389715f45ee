"""16. Images: time to first token of a chat with one image, ours against ``llama-server``.

Both read the image with llama.cpp's libmtmd and the same projector: the tiny random one the
tests use (``tests/tiny_projector.py``, 64 tokens an image here), so the encoder's own time
is small and what is compared is what each server does around it: decoding the PNG,
tokenizing, encoding, decoding the image's embeddings into a sequence, then the text after
it. Through ``/v1/chat/completions`` (streamed, greedy), the image first in the message, a
different image every request (a cached image would not be read again), ``llama-server``
with ``-fa off`` (our attention kernels). The same chat without the image, with a
different text every request, is each server's baseline: the image's cost is the
difference.
"""

from __future__ import annotations

import base64
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests.tiny_projector import PATCH_SIZE, tiny_png, write_tiny_projector

from bench.fleet import Fleet, quiet_pause
from bench.report import num, save_result, table
from bench.stats import Summary

NAME = "images"
SEEING = "seeing:latest"
#: pixels square: (IMAGE_SIZE / PATCH_SIZE) ** 2 = 64 tokens an image
IMAGE_SIZE = 128
TOKENS = 4


def _chat(url: str, model: str, text: str, image: bytes | None) -> tuple[float, int, int]:
    """Time to the first content token of one streamed chat, the prompt's tokens and how
    many of them the server's cache held (-1 where it does not say)."""
    content: list[dict[str, Any]] = []
    if image is not None:
        data = "data:image/png;base64," + base64.b64encode(image).decode()
        content.append({"type": "image_url", "image_url": {"url": data}})
    content.append({"type": "text", "text": text})
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = math.nan
    prompt_tokens = cached = -1
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            choices = chunk.get("choices") or []
            if math.isnan(first) and choices and (choices[0].get("delta") or {}).get("content"):
                first = time.perf_counter() - start
            usage = chunk.get("usage")
            if usage:
                prompt_tokens = usage.get("prompt_tokens", -1)
                cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", -1)
    return first, prompt_tokens, cached


def run(fleet: Fleet) -> dict[str, Any]:
    reps = fleet.config.repetitions(full=12, quick=3)
    tokens = (IMAGE_SIZE // PATCH_SIZE) ** 2
    print(f"== images: chat TTFT with one {tokens}-token image, {reps} reps", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="a3s-power-bench-images-"))
    projector = write_tiny_projector(folder / "mmproj.gguf", image_size=IMAGE_SIZE)
    power = fleet.power()
    modelfile = folder / "Modelfile"
    modelfile.write_text(f"FROM {fleet.config.model}\nFROM {projector}\n", encoding="utf-8")
    power.cli("create", SEEING, "-f", str(modelfile))
    targets = {"a3s-power": (power.url, SEEING)}
    peer = fleet.llama_server_reading_images(projector)
    if peer is not None:
        targets[peer.label] = (peer.url, "model")
    samples: dict[str, dict[str, list[float]]] = {
        label: {"image": [], "text": [], "image_cached": [], "text_cached": []} for label in targets
    }
    prompt_tokens: dict[str, set[int]] = {label: set() for label in targets}
    for url, model in targets.values():
        _chat(url, model, "Hello", tiny_png(0, IMAGE_SIZE))  # loads, and warms both paths
    for rep in range(reps):
        for index, (label, (url, model)) in enumerate(targets.items()):
            quiet_pause(fleet, max_wait=5)
            seed = 1000 + rep * len(targets) + index  # never an image either saw before
            ttft, count, cached = _chat(url, model, "What is this?", tiny_png(seed, IMAGE_SIZE))
            samples[label]["image"].append(ttft)
            samples[label]["image_cached"].append(cached)
            prompt_tokens[label].add(count)
            ttft, _, cached = _chat(url, model, f"Question {seed}: what is this?", None)
            samples[label]["text"].append(ttft)
            samples[label]["text_cached"].append(cached)
        print(f"  rep {rep + 1}/{reps}", flush=True)
    summary: dict[str, Any] = {}
    rows = []
    for label, kinds in samples.items():
        cost = [a - b for a, b in zip(kinds["image"], kinds["text"], strict=True)]
        summary[label] = {
            "image_ttft_s": Summary.of(kinds["image"]).as_dict(),
            "text_ttft_s": Summary.of(kinds["text"]).as_dict(),
            "image_cost_s": Summary.of(cost).as_dict(),
            "prompt_tokens_with_image": sorted(prompt_tokens[label]),
            "samples": kinds,
        }
        rows.append(
            [
                label,
                Summary.of([x * 1000 for x in kinds["image"]]).spread(1),
                Summary.of([x * 1000 for x in kinds["text"]]).spread(1),
                Summary.of([x * 1000 for x in cost]).spread(1),
                ", ".join(str(t) for t in summary[label]["prompt_tokens_with_image"]),
                _cached_range(kinds["text_cached"]),
            ]
        )
    if peer is not None:
        ours = samples["a3s-power"]["image"]
        theirs = samples[peer.label]["image"]
        ratio = Summary.of([a / b for a, b in zip(ours, theirs, strict=True)])
        summary["ratio_to_llama_server"] = ratio.as_dict()
        print(f"  image TTFT, ours / {peer.label}: {ratio.spread(3)}", flush=True)
    print(
        table(
            f"Chat TTFT with one {tokens}-token image, ms, median (min-max) of {reps}",
            ["server", "with image", "text only", "image's cost", "prompt tokens", "text cached"],
            rows,
        ),
        flush=True,
    )
    return save_result(NAME, summary, fleet=fleet.describe(), reps=reps)


def headline(result: dict[str, Any]) -> list[list[str]]:
    results = result["results"]
    ours = results["a3s-power"]["image_cost_s"]["median"]
    rows = [[NAME, "a3s-power: one image's TTFT cost", f"{ours * 1000:.1f} ms", "-", "info"]]
    ratio = results.get("ratio_to_llama_server")
    if ratio is not None:
        rows.append(
            [NAME, "image chat TTFT / llama-server -fa off", num(ratio["median"]), "-", "info"]
        )
    return rows


def _cached_range(counts: list[float]) -> str:
    known = [int(c) for c in counts if c >= 0]
    return f"{min(known)}-{max(known)}" if known else "n/a"
