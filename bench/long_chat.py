"""11. Long chat: the next turn of a conversation that has grown to about 1,200 tokens, on
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

from functools import partial
from typing import Any

from bench.chat_turns import conversation
from bench.clients import StreamResult, Target, new_client, stream
from bench.fleet import Fleet, quiet_pause
from bench.noise import paired_summary, quiet_summary
from bench.peers import BAR, OURS, OURS_LIKE_FOR_LIKE, flash_attention_pairs
from bench.report import num, save_result, table
from bench.stats import Summary

NAME = "long_chat"
#: 12 turns: the last prompt is 1,240 tokens
TURNS = 12
TOKENS = 128
#: the last turn's answer begins a story: greedy SmolLM2 then runs past TOKENS
_STORY = "Here is a story about the walk.\n\nOnce upon a time"


def _last_turn(fleet: Fleet, target: Target, rep: int, client: Any) -> StreamResult:
    """A new conversation up to its last turn, then the last turn, timed (with how busy
    the rest of the machine was meanwhile)."""
    prompts = conversation(f"Long chat {rep + 1}.", TURNS)
    for prompt in prompts[:-1]:
        stream(target, prompt, 4, client)
    quiet_pause(fleet)
    result, others = fleet.meter.measure(
        partial(stream, target, prompts[-1] + _STORY, TOKENS, client)
    )
    result.others_cores = others
    return result


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
                result = _last_turn(fleet, target, rep, client)
            finally:
                client.close()
            samples[target.label].append(result)
            print(
                f"  rep {rep + 1}/{reps} {target.label}: TTFT {result.ttft * 1000:.0f} ms, "
                f"decode {result.decode_tokens_per_s:.1f} tok/s, {result.tokens} tokens "
                f"(others {result.others_cores:.2f} cores)",
                flush=True,
            )
    bar = samples.get(BAR)
    summary: dict[str, Any] = {}
    rows = []
    for label, results in samples.items():
        ttft, ttft_basis = quiet_summary(results, _ttft)
        decode, decode_basis = quiet_summary(results, _decode)
        decode_vs_bar = paired_summary(results, bar, _decode) if bar else None
        ttft_vs_bar = paired_summary(results, bar, _ttft) if bar else None
        summary[label] = {
            "ttft_s": ttft.as_dict(),
            "ttft_basis": ttft_basis,
            "decode_tokens_per_s": decode.as_dict(),
            "decode_basis": decode_basis,
            "decode_vs_llama_server": decode_vs_bar,
            "ttft_vs_llama_server": ttft_vs_bar,
            "samples": [r.sample() for r in results],
        }
        rows.append(
            [
                label,
                f"{ttft.spread(0, scale=1000)} [{ttft_basis}]",
                f"{decode.spread(1)} [{decode_basis}]",
                _ratio_cell(decode_vs_bar),
                _ratio_cell(ttft_vs_bar),
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


def _ttft(result: StreamResult) -> float:
    return result.ttft


def _decode(result: StreamResult) -> float:
    return result.decode_tokens_per_s


def _ratio_cell(paired: dict[str, Any] | None) -> str:
    if paired is None:
        return "n/a"
    return f"{Summary(**paired['ratio']).spread(2)} [{paired['basis']}]"


def headline(result: dict[str, Any]) -> list[list[str]]:
    ours = result["results"].get(OURS)
    if ours is None or ours.get("decode_vs_llama_server") is None:
        return []
    turns = result.get("turns", TURNS)
    rows = []
    for key, figure in (
        ("decode_vs_llama_server", f"turn {turns} decode tok/s / llama-server (its defaults)"),
        ("ttft_vs_llama_server", f"turn {turns} TTFT / llama-server (its defaults)"),
    ):
        paired = ours[key]
        # results written before the quiet-round bases were kept: a plain summary
        median, basis = (
            (paired["ratio"]["median"], f" [{paired['basis']}]")
            if "ratio" in paired
            else (paired["median"], "")
        )
        rows.append([NAME, f"{figure}{basis}", num(median), "-", "info"])
    flash = result["results"].get(OURS_LIKE_FOR_LIKE)
    if flash is not None:
        decode = ours["decode_tokens_per_s"]["median"] / flash["decode_tokens_per_s"]["median"]
        rows.append([NAME, "ours: decode without / with flash attention", num(decode), "-", "info"])
    return rows
