"""18. Adding to a long conversation (``POST /v1/conversations/{id}/items``): what one add
costs at 10 and at 10,000 items, and how ``GET /v1/models`` answers while three clients add.

A conversation is an append-only log (``power_api_openai.conversation_store``): an add
appends one synced line, so it should cost the same however long the conversation is.
Baselines, same run: the same add on a conversation of 10 items; ``/v1/models`` on the
idle server; and, in this process, what the first design did for each add (the whole
conversation read, parsed, written aside, synced and renamed), on a copy of the same
10,000 items.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from bench.clients import LatencyProbe
from bench.fleet import Fleet, quiet_pause
from bench.report import num, save_result, table
from bench.stats import Summary

NAME = "conversation_log"
LONG = 10_000
SHORT = 10
ADDS = 40
ADDERS = 3
LOADED_SECONDS = 4.0


def item(n: int) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": f"Line {n}: the mill by the river."}


def make_conversation(client: httpx.Client, url: str, count: int) -> str:
    """A conversation of ``count`` items, added 20 at a time (the API's most)."""
    conversation = client.post(f"{url}/v1/conversations", json={}).json()["id"]
    for start in range(0, count, 20):
        batch = [item(n) for n in range(start, min(start + 20, count))]
        client.post(f"{url}/v1/conversations/{conversation}/items", json={"items": batch})
    return str(conversation)


def add_latencies(client: httpx.Client, url: str, conversation: str, count: int) -> list[float]:
    taken = []
    for n in range(count):
        start = time.perf_counter()
        reply = client.post(
            f"{url}/v1/conversations/{conversation}/items", json={"items": [item(n)]}
        )
        reply.raise_for_status()
        taken.append(time.perf_counter() - start)
    return taken


def rewrite_latencies(items: list[dict[str, Any]], count: int) -> list[float]:
    """The first design's add, in this process: read and parse the whole conversation, add
    one item, write it all aside, sync, rename."""
    folder = Path(tempfile.mkdtemp(prefix="bench-rewrite-"))
    path = folder / "conversation.json"
    path.write_text(json.dumps({"items": items}))
    taken = []
    for n in range(count):
        start = time.perf_counter()
        held = json.loads(path.read_bytes())
        held["items"].append(item(n))
        aside = folder / ".aside"
        with open(aside, "wb") as handle:
            handle.write(json.dumps(held, separators=(",", ":")).encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(aside, path)
        taken.append(time.perf_counter() - start)
    path.unlink()
    folder.rmdir()
    return taken


def models_while_adding(url: str, conversation: str) -> list[float]:
    stop = threading.Event()

    def adder() -> None:
        with httpx.Client(timeout=60) as client:
            n = 0
            while not stop.is_set():
                client.post(
                    f"{url}/v1/conversations/{conversation}/items", json={"items": [item(n)]}
                )
                n += 1

    threads = [threading.Thread(target=adder, daemon=True) for _ in range(ADDERS)]
    probe = LatencyProbe(url, ["/v1/models"])
    for thread in threads:
        thread.start()
    probe.start()
    time.sleep(LOADED_SECONDS)
    probe.stop()
    stop.set()
    for thread in threads:
        thread.join()
    return probe.samples["/v1/models"]


def run(fleet: Fleet) -> dict[str, Any]:
    print(f"== conversation_log: one add at {SHORT} and {LONG} items, {ADDS} each", flush=True)
    url = fleet.power().url
    with httpx.Client(timeout=120) as client:
        short = make_conversation(client, url, SHORT)
        long = make_conversation(client, url, LONG)
        items = client.get(f"{url}/v1/conversations/{long}/items", params={"limit": 100}).json()[
            "data"
        ]
        quiet_pause(fleet)
        at_short = add_latencies(client, url, short, ADDS)
        quiet_pause(fleet)
        at_long = add_latencies(client, url, long, ADDS)
    rewrite = rewrite_latencies([items[0]] * LONG, ADDS)
    quiet_pause(fleet)
    idle = LatencyProbe(url, ["/v1/models"]).run_for(LOADED_SECONDS).samples["/v1/models"]
    quiet_pause(fleet)
    loaded = models_while_adding(url, long)
    figures: dict[str, Any] = {
        "add_at_short_s": Summary.of(at_short).as_dict(),
        "add_at_long_s": Summary.of(at_long).as_dict(),
        "rewrite_at_long_s": Summary.of(rewrite).as_dict(),
        "models_idle_s": Summary.of(idle).as_dict(),
        "models_while_adding_s": Summary.of(loaded).as_dict(),
        "samples": {
            "add_at_short": at_short,
            "add_at_long": at_long,
            "rewrite_at_long": rewrite,
            "models_idle": idle,
            "models_while_adding": loaded,
        },
    }
    long_over_short = median(at_long) / median(at_short)
    rewrite_over_ours = median(rewrite) / median(at_long)
    figures["long_over_short"] = long_over_short
    figures["rewrite_over_ours"] = rewrite_over_ours
    ms = 1000
    add_rows: list[tuple[str, int, list[float], str]] = [
        ("a3s-power add", SHORT, at_short, "1 (baseline)"),
        ("a3s-power add", LONG, at_long, f"{long_over_short:.2f} x the add at {SHORT}"),
        ("whole-file rewrite, in process", LONG, rewrite, f"{rewrite_over_ours:.1f} x ours"),
    ]
    print(
        table(
            f"One add to a conversation, ms, median (min-max) of {ADDS}",
            ["what", "items", "ms", "p99", "ratio"],
            [
                [what, count, Summary.of(s).spread(2, ms), num(Summary.of(s).p99 * ms, 2), ratio]
                for what, count, s, ratio in add_rows
            ],
        ),
        flush=True,
    )
    print(
        table(
            f"GET /v1/models, ms, while {ADDERS} clients add to the {LONG}-item conversation",
            ["when", "samples", "p50", "p99", "max"],
            [
                [label, len(s), *(num(v * ms, 1) for v in (median(s), Summary.of(s).p99, max(s)))]
                for label, s in (("idle", idle), ("while adding", loaded))
            ],
        ),
        flush=True,
    )
    return save_result(NAME, {"a3s-power": figures}, fleet=fleet.describe(), adds=ADDS, long=LONG)


def headline(result: dict[str, Any]) -> list[list[str]]:
    ours = result["results"].get("a3s-power") or {}
    rows = []
    if "long_over_short" in ours:
        ratio = num(ours["long_over_short"])
        rows.append([NAME, f"add at {LONG} items / add at {SHORT}", ratio, "-", "info"])
    loaded = ours.get("models_while_adding_s")
    if loaded:
        p99 = f"{loaded['p99'] * 1000:.1f} ms"
        rows.append([NAME, "/v1/models p99 while 3 clients add", p99, "-", "info"])
    return rows
