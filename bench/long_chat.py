"""10. Long chat: the next turn of a conversation that has grown to about 1,200 tokens, on
ours and on llama-server, each with flash attention off and on.

llama-server turns flash attention on by default on a CPU, ours leaves it off: with short
prompts it makes batched decode faster (``peers``), and this benchmark measures what it
costs once a conversation is long. Each repetition plays a new conversation of ``TURNS``
turns (the earlier ones with 4 tokens each, so every server has them cached), then times
the last turn: its time to first token (reading the new question after the cached
history) and its decode rate (tokens after the first over the time after it). The last
turn asks for a story, so every server generates all ``TOKENS`` tokens. Prompts are raw
ChatML completions, the same tokens for every server.
"""

from __future__ import annotations

from typing import Any

from bench.chat_turns import conversation
from bench.clients import StreamResult, Target, new_client, stream
from bench.fleet import Fleet, quiet_pause
from bench.peers import BAR, OURS, OURS_LIKE_FOR_LIKE, flash_attention_pairs
from bench.report import num, save_result, table
from bench.stats import Summary

NAME = "long_chat"
#: 12 turns: the last prompt is 1,240 tokens
TURNS = 12
TOKENS = 128
#: the last turn's answer begins a story: greedy SmolLM2 then runs past TOKENS
_STORY = "Here is a story about the walk.\n\nOnce upon a time"


def _last_turn(target: Target, rep: int, client: Any) -> StreamResult:
    """A new conversation up to its last turn, then the last turn, timed."""
    prompts = conversation(f"Long chat {rep + 1}.", TURNS)
    for prompt in prompts[:-1]:
        stream(target, prompt, 4, client)
    quiet_pause()
    return stream(target, prompts[-1] + _STORY, TOKENS, client)


def run(fleet: Fleet) -> dict[str, Any]:
    reps = fleet.config.repetitions(full=3, quick=1)
    print(
        f"== long_chat: turn {TURNS} of a conversation (~1,200 tokens), {TOKENS} tokens, "
        f"{reps} reps",
        flush=True,
    )
    targets = flash_attention_pairs(fleet)
    samples: dict[str, list[StreamResult]] = {t.label: [] for t in targets}
    for rep in range(reps):
        for target in targets:
            client = new_client()
            try:
                result = _last_turn(target, rep, client)
            finally:
                client.close()
            samples[target.label].append(result)
            print(
                f"  rep {rep + 1}/{reps} {target.label}: TTFT {result.ttft * 1000:.0f} ms, "
                f"decode {result.decode_tokens_per_s:.1f} tok/s, {result.tokens} tokens",
                flush=True,
            )
    bar = samples.get(BAR)
    summary: dict[str, Any] = {}
    rows = []
    for label, results in samples.items():
        ttft = Summary.of([r.ttft for r in results])
        decode = Summary.of([r.decode_tokens_per_s for r in results])
        paired = list(zip(results, bar, strict=True)) if bar else []
        decode_vs_bar = Summary.of(
            [r.decode_tokens_per_s / b.decode_tokens_per_s for r, b in paired]
        )
        ttft_vs_bar = Summary.of([r.ttft / b.ttft for r, b in paired])
        summary[label] = {
            "ttft_s": ttft.as_dict(),
            "decode_tokens_per_s": decode.as_dict(),
            "decode_vs_llama_server": decode_vs_bar.as_dict() if bar else None,
            "ttft_vs_llama_server": ttft_vs_bar.as_dict() if bar else None,
            "samples": [r.sample() for r in results],
        }
        rows.append(
            [
                label,
                ttft.spread(0, scale=1000),
                decode.spread(1),
                decode_vs_bar.spread(2) if bar else "n/a",
                ttft_vs_bar.spread(2) if bar else "n/a",
                min((r.tokens for r in results), default=0),
            ]
        )
    print(
        table(
            f"Long chat: turn {TURNS} (~1,200 tokens, earlier turns cached), {TOKENS} tokens, "
            f"median (min-max) of {reps}",
            [
                "target",
                "TTFT ms",
                "decode tok/s",
                "decode / llama-server",
                "TTFT / llama-server",
                "fewest tokens",
            ],
            rows,
        ),
        flush=True,
    )
    return save_result(NAME, summary, fleet=fleet.describe(), reps=reps, turns=TURNS, tokens=TOKENS)


def headline(result: dict[str, Any]) -> list[list[str]]:
    ours = result["results"].get(OURS)
    if ours is None or ours.get("decode_vs_llama_server") is None:
        return []
    turns = result.get("turns", TURNS)
    rows = [
        [
            NAME,
            f"turn {turns} decode tok/s / llama-server (its defaults)",
            num(ours["decode_vs_llama_server"]["median"]),
            "-",
            "info",
        ],
        [
            NAME,
            f"turn {turns} TTFT / llama-server (its defaults)",
            num(ours["ttft_vs_llama_server"]["median"]),
            "-",
            "info",
        ],
    ]
    flash = result["results"].get(OURS_LIKE_FOR_LIKE)
    if flash is not None:
        decode = ours["decode_tokens_per_s"]["median"] / flash["decode_tokens_per_s"]["median"]
        rows.append([NAME, "ours: decode without / with flash attention", num(decode), "-", "info"])
    return rows
