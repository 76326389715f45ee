"""9. Chat turns: the time to first token of a conversation's last turn, which resends the
whole conversation, against the same prompt with nothing cached; beside llama-server and
the in-process baseline, which both cache prompts too.

A conversation of ``TURNS`` turns (fixed user and assistant texts in ChatML, sent as raw
completions so every server reads the same tokens) goes turn by turn; the last turn is
timed. Then the same last prompt under another opening line (its first tokens differ, so
no server can reuse anything) is timed cold. Each repetition is a new conversation.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from bench.clients import StreamResult, Target, new_client, stream
from bench.fleet import Fleet, quiet_pause
from bench.report import num, save_result, table
from bench.servers import MODEL_NAME
from bench.stats import Summary

NAME = "chat_turns"
TURNS = 6
#: tokens generated per turn: only the first one is timed
TOKENS = 4
OURS = "a3s-power /v1/completions"
BAR = "llama-server"

_QUESTION = (
    "I am planning a long walk along the coast next weekend, starting early in the morning "
    "and finishing before dark. What should I pack, how should I plan the breaks, and what "
    "should I do if the weather turns bad halfway along the path?"
)
_ANSWER = (
    "Pack water, food, a map, a warm layer and a rain jacket. Plan a short break every hour "
    "and a longer one at midday. If the weather turns, head for the nearest village."
)


def conversation(opening: str, turns: int = TURNS) -> list[str]:
    """The prompt of every turn: the conversation so far and the new question (each turn
    adds 104 tokens)."""
    history = f"<|im_start|>system\n{opening} You are a helpful assistant.<|im_end|>\n"
    prompts = []
    for turn in range(1, turns + 1):
        question = f"<|im_start|>user\nQuestion {turn}. {_QUESTION}<|im_end|>\n"
        prompts.append(history + question + "<|im_start|>assistant\n")
        history += question + f"<|im_start|>assistant\n{_ANSWER}<|im_end|>\n"
    return prompts


def _ask(fleet: Fleet, target: Target | None, prompt: str, client: Any) -> StreamResult:
    if target is None:
        return fleet.baseline().generate(prompt, TOKENS)
    return stream(target, prompt, TOKENS, client)


def run(fleet: Fleet) -> dict[str, Any]:
    config = fleet.config
    reps = config.repetitions(full=3, quick=1)
    print(f"== chat_turns: {TURNS} turns, last turn cached and cold, {reps} reps", flush=True)
    targets: dict[str, Target | None] = {
        "in-process": None,
        OURS: Target(OURS, fleet.power().url, "openai", MODEL_NAME),
    }
    llama = fleet.llama_server()
    if llama is not None:
        targets[BAR] = Target(BAR, llama.url, "openai", MODEL_NAME)
    clients = {label: new_client() for label in targets}
    cached: dict[str, list[StreamResult]] = {label: [] for label in targets}
    cold: dict[str, list[StreamResult]] = {label: [] for label in targets}
    try:
        for rep in range(reps):
            for label, target in targets.items():
                ask = partial(_ask, fleet, target, client=clients[label])
                prompts = conversation(f"Conversation {rep + 1}.")
                for prompt in prompts[:-1]:
                    ask(prompt)
                quiet_pause(fleet)
                cached[label].append(ask(prompts[-1]))
                quiet_pause(fleet)
                cold[label].append(ask(conversation(f"Session {900 + rep}.")[-1]))
                print(
                    f"  rep {rep + 1}/{reps} {label}: last turn TTFT "
                    f"{cached[label][-1].ttft * 1000:.0f} ms cached, "
                    f"{cold[label][-1].ttft * 1000:.0f} ms cold",
                    flush=True,
                )
    finally:
        for client in clients.values():
            if hasattr(client, "close"):
                client.close()
    summary: dict[str, Any] = {}
    rows = []
    bar = cached.get(BAR)
    for label in targets:
        warm = Summary.of([r.ttft for r in cached[label]])
        fresh = Summary.of([r.ttft for r in cold[label]])
        speedup = Summary.of(
            [c.ttft / w.ttft for c, w in zip(cold[label], cached[label], strict=True)]
        )
        versus_bar = (
            Summary.of([w.ttft / b.ttft for w, b in zip(cached[label], bar, strict=True)])
            if bar
            else None
        )
        summary[label] = {
            "cached_ttft_s": warm.as_dict(),
            "cold_ttft_s": fresh.as_dict(),
            "cold_over_cached": speedup.as_dict(),
            "cached_vs_llama_server": versus_bar.as_dict() if versus_bar else None,
            "samples": {
                "cached": [r.sample() for r in cached[label]],
                "cold": [r.sample() for r in cold[label]],
            },
        }
        rows.append(
            [
                label,
                warm.spread(0, scale=1000),
                fresh.spread(0, scale=1000),
                speedup.spread(1),
                versus_bar.spread(2) if versus_bar else "n/a",
            ]
        )
    print(
        table(
            f"Chat turns: TTFT of turn {TURNS} (cached) and of the same prompt cold, ms, "
            f"median (min-max) of {reps}",
            [
                "target",
                "last turn, cached",
                "same prompt, cold",
                "cold / cached",
                "cached / llama-server",
            ],
            rows,
        ),
        flush=True,
    )
    return save_result(NAME, summary, reps=reps, turns=TURNS)


def headline(result: dict[str, Any]) -> list[list[str]]:
    ours = result["results"].get(OURS)
    if ours is None:
        return []
    rows = [
        [
            NAME,
            f"turn {result.get('turns', TURNS)} TTFT: cold / cached (ours)",
            num(ours["cold_over_cached"]["median"]),
            "-",
            "info",
        ]
    ]
    versus = ours.get("cached_vs_llama_server")
    if versus:
        rows.append([NAME, "cached turn TTFT / llama-server", num(versus["median"]), "-", "info"])
    return rows
