"""Where a job runs, on the real model: next to the running sequences, its cache copied
there if need be (the rule itself: test_sequence_slots.py).

A cache copied to another sequence id gives the same output as the cache left in place;
the cache moved out of its way still serves its conversation; short jobs never move;
conversations returning in one step do not evict each other's caches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from power_backend_llamacpp import batching
from power_backend_llamacpp import engine as engine_module
from power_backend_llamacpp.engine import LlamaCppEngine
from power_backend_llamacpp.slots import count_runs
from power_core.arrivals import ARRIVING
from power_core.engine import CompletionJob, EventStream
from power_core.types import EngineEvent, TextDelta

from .conftest import GREEDY, chat, done, load_engine, run, text

SLOTS_LOG = "power_backend_llamacpp.slots"
BATCHING_LOG = "power_backend_llamacpp.batching"


#: the first turn of three conversations
FIRST = {
    "a": chat("Tell me a long story about a dragon."),
    "b": chat("What is the capital of France?"),
    "c": chat("Name three colours of the rainbow."),
    "d": chat("How do bees make honey?"),
}
#: the model's first answers (filled once per module)
FOLLOW_UPS: dict[str, str] = {}


def follow_up(name: str) -> str:
    """The conversation's second turn: its first turn, the model's answer, a question."""
    return FIRST[name] + FOLLOW_UPS[name] + chat("Please go on.")


@pytest.fixture(scope="module", autouse=True)
def first_answers(model_path: Path) -> None:
    """Each conversation's first answer, as the model gives it (greedy)."""
    engine = load_engine(model_path, num_parallel=1)
    try:
        for name, prompt in FIRST.items():
            FOLLOW_UPS[name] = text(run(engine, prompt, max_tokens=24)) + "<|im_end|>\n"
    finally:
        engine.close()


@pytest.fixture()
def engine(model_path: Path) -> Iterator[LlamaCppEngine]:
    engine = load_engine(model_path, num_parallel=4)
    yield engine
    engine.close()


def with_a_running(
    engine: LlamaCppEngine, name: str, max_tokens: int = 24
) -> tuple[list[EngineEvent], list[EngineEvent]]:
    """Start conversation a's follow-up (long), and once it generates, ``name``'s; the
    events of both."""
    long = engine.submit(CompletionJob(follow_up("a"), sampling=GREEDY, max_tokens=200))
    events = iter(long)
    running: list[EngineEvent] = []
    for event in events:
        running.append(event)
        if isinstance(event, TextDelta):
            break
    other = run(engine, follow_up(name), max_tokens=max_tokens)
    running.extend(events)
    assert done(running).usage.completion_tokens > 24  # still running when the other came
    return running, other


def together(
    engine: LlamaCppEngine, jobs: dict[str, CompletionJob]
) -> dict[str, list[EngineEvent]]:
    """Submit ``jobs`` so that they start in one step (the engine waits while a request is
    on its way; the caller sets ``BURST_WAIT_SECONDS`` high) and collect their events."""
    events: dict[str, list[EngineEvent]] = {name: [] for name in jobs}
    readers = []
    with ARRIVING.on_the_way():
        for name, job in jobs.items():
            reader = threading.Thread(target=events[name].extend, args=(engine.submit(job),))
            reader.start()
            readers.append(reader)
    for reader in readers:
        reader.join(timeout=60)
    return events


def moves(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == SLOTS_LOG]


def sequences_running(caplog: pytest.LogCaptureFixture) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.name == BATCHING_LOG]
    return [m.split("running in sequences ")[1] for m in messages if "admitted" in m]


def test_a_cache_copied_next_to_a_running_sequence_gives_the_same_output(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    in_place = load_engine(model_path, num_parallel=4)
    try:
        for name in ("a", "c"):  # c's cache lands next to a's: nothing moves
            run(in_place, FIRST[name] + FOLLOW_UPS[name])
        _, expected = with_a_running(in_place, "c")
        assert moves(caplog) == []
        assert sequences_running(caplog)[-1] == "[0, 1]"
    finally:
        in_place.close()
    caplog.clear()
    moved = load_engine(model_path, num_parallel=4)
    try:
        for name in ("a", "b", "c"):  # c's cache in 2, b's (in the way) in 1
            run(moved, FIRST[name] + FOLLOW_UPS[name])
        _, events = with_a_running(moved, "c")
        assert moves(caplog) == ["sequence 1 copied to 3", "sequence 2 copied to 1"]
        assert sequences_running(caplog)[-1] == "[0, 1]"
        assert text(events) == text(expected)
        cached = done(events).usage.cached_tokens
        assert cached == done(expected).usage.cached_tokens
        assert cached >= len(moved.tokenize(FIRST["c"] + FOLLOW_UPS["c"]))
        # b's cache, moved out of the way, still serves b
        caplog.clear()
        b_turn = run(moved, follow_up("b"), max_tokens=12)
        assert moves(caplog) == []
        assert done(b_turn).usage.cached_tokens >= len(moved.tokenize(FIRST["b"]))
    finally:
        moved.close()
    fresh = load_engine(model_path, num_parallel=4)
    try:
        run(fresh, FIRST["b"] + FOLLOW_UPS["b"])
        assert text(b_turn) == text(run(fresh, follow_up("b"), max_tokens=12))
    finally:
        fresh.close()


def test_a_short_job_runs_where_its_cache_is(
    engine: LlamaCppEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("a", "b", "c"):
        run(engine, FIRST[name] + FOLLOW_UPS[name])
    with_a_running(engine, "c", max_tokens=4)
    assert moves(caplog) == []
    assert sequences_running(caplog)[-1] == "[0, 2]"


def test_conversations_returning_in_one_step_keep_each_others_caches(
    engine: LlamaCppEngine, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b", "c", "d"):  # in 0, 1, 2, 3; a's is the oldest, then b's
        run(engine, FIRST[name] + FOLLOW_UPS[name])
    monkeypatch.setattr(engine_module, "BURST_WAIT_SECONDS", 30.0)
    caplog.set_level(logging.DEBUG)
    returning = ("c", "a", "b")
    jobs = {
        name: CompletionJob(follow_up(name), sampling=GREEDY, max_tokens=20) for name in returning
    }
    events = together(engine, jobs)
    # c stays in 2; a moves beside it into d's place (3), not into b's (1), which b takes
    assert moves(caplog) == ["sequence 0 copied to 3"]
    assert sequences_running(caplog) == ["[1, 2, 3]"]
    for name in returning:
        cached = done(events[name]).usage.cached_tokens
        assert cached >= len(engine.tokenize(FIRST[name] + FOLLOW_UPS[name]))


def test_prompts_admitted_out_of_order_are_batched_in_ascending_sequence_order(
    engine: LlamaCppEngine, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(6):  # 0-3 hold caches, then 0 and 1 again: 2 is the oldest
        run(engine, chat(f"Question {number}: what is {number} times {number}?"), max_tokens=2)
    batches: list[list[int]] = []
    real_decode = batching.lc.llama_decode

    def recording_decode(ctx: object, batch: object) -> int:
        count = batch.n_tokens  # type: ignore[attr-defined]
        batches.append([batch.seq_id[i][0] for i in range(count)])  # type: ignore[attr-defined]
        return int(real_decode(ctx, batch))

    monkeypatch.setattr(batching.lc, "llama_decode", recording_decode)
    monkeypatch.setattr(engine_module, "BURST_WAIT_SECONDS", 30.0)
    caplog.set_level(logging.DEBUG)
    names = ("a", "b", "c", "d")  # four new conversations start in one step
    events = together(
        engine, {name: CompletionJob(FIRST[name], sampling=GREEDY, max_tokens=2) for name in names}
    )
    assert all(text(events[name]) for name in names)
    assert sequences_running(caplog) == ["[0, 1, 2, 3]"]
    first = batches[0]
    assert len(set(first)) == 4 and first == sorted(first)  # admitted as 2, 3, 1, 0


def stories(engine: LlamaCppEngine, order: tuple[str, ...]) -> dict[str, list[EngineEvent]]:
    """Three jobs started in one step, in sequences 0, 1, 2 in this ``order``: two long
    stories and one short answer ("short")."""
    prompts = {
        "first": ("Once upon a time, in a small village by the sea,", 40),
        "second": ("Once upon a time, a young dragon", 40),
        "short": (FIRST["b"], 3),
    }
    jobs = {}
    for name in order:
        prompt, tokens = prompts[name]
        jobs[name] = CompletionJob(prompt, sampling=GREEDY, max_tokens=tokens)
    return together(engine, jobs)


def test_a_sequence_that_finishes_between_running_ones_leaves_no_gap(
    model_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "BURST_WAIT_SECONDS", 30.0)
    caplog.set_level(logging.DEBUG)
    reference = load_engine(model_path, num_parallel=4)
    try:  # the short answer last: nothing to close
        expected = stories(reference, ("first", "second", "short"))
        assert moves(caplog) == []
    finally:
        reference.close()
    caplog.clear()
    engine = load_engine(model_path, num_parallel=4)
    try:  # the short answer in the middle: the second story moves into its place
        events = stories(engine, ("first", "short", "second"))
        assert sequences_running(caplog) == ["[0, 1, 2]"]
        assert moves(caplog) == ["sequence 1 copied to 3", "running sequence 2 moved to 1"]
        for name in ("first", "second"):
            assert done(events[name]).usage.completion_tokens == 40
            assert text(events[name]) == text(expected[name])
        # the short answer's cache, moved out of the way, still serves its conversation
        follow_up = run(engine, FIRST["b"] + "Paris.", max_tokens=2)
        assert done(follow_up).usage.cached_tokens >= len(engine.tokenize(FIRST["b"]))
    finally:
        engine.close()


def cancel_at_step(
    monkeypatch: pytest.MonkeyPatch, step: int, victims: Callable[[], list[EventStream]]
) -> list[set[int]]:
    """Cancel ``victims()`` on the engine's thread right after its ``step``-th decode, so
    that the cancellations land in one step whatever the readers do; returns the sequence
    ids of every decode batch, as they happen."""
    batches: list[set[int]] = []
    real_decode = batching.lc.llama_decode

    def decode_then_cancel(ctx: object, batch: object) -> int:
        count = batch.n_tokens  # type: ignore[attr-defined]
        batches.append({batch.seq_id[i][0] for i in range(count)})  # type: ignore[attr-defined]
        status = int(real_decode(ctx, batch))
        if len(batches) == step:
            for stream in victims():
                stream.cancel()
        return status

    monkeypatch.setattr(batching.lc, "llama_decode", decode_then_cancel)
    monkeypatch.setattr(engine_module, "BURST_WAIT_SECONDS", 30.0)
    return batches


def stories_cancelled(
    model_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    subjects: list[str],
    cancelled: list[int],
    parallel: int,
) -> tuple[dict[str, str], list[set[int]]]:
    """Stories about ``subjects`` started in one step (sequences 0, 1, ... in this order), 40
    tokens each, on an engine of ``parallel`` sequences; the ``cancelled`` ones (positions)
    end after 4 decode steps. Returns the others' texts and every decode batch's sequence
    ids."""
    streams: list[EventStream] = []
    batches = cancel_at_step(monkeypatch, 4, lambda: [streams[i] for i in cancelled])
    engine = load_engine(model_path, num_parallel=parallel)
    try:
        with ARRIVING.on_the_way():
            streams = [
                engine.submit(
                    CompletionJob(f"Once upon a time, {who}", sampling=GREEDY, max_tokens=40)
                )
                for who in subjects
            ]
        texts = {}
        for index, stream in enumerate(streams):
            events = list(stream)
            if index not in cancelled:
                assert done(events).usage.completion_tokens == 40
                texts[subjects[index]] = text(events)
        return texts, batches
    finally:
        engine.close()


def test_a_sequence_cancelled_between_running_ones_leaves_no_gap(
    model_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the story cancelled last: nothing to close
    expected, _ = stories_cancelled(
        model_path, monkeypatch, ["a baker", "a sailor", "a lost robot"], [2], parallel=4
    )
    caplog.set_level(logging.DEBUG)
    # the story cancelled in the middle: the sailor's moves into its place
    texts, batches = stories_cancelled(
        model_path, monkeypatch, ["a baker", "a lost robot", "a sailor"], [1], parallel=4
    )
    assert sequences_running(caplog) == ["[0, 1, 2]"]
    # the cancelled story's cache kept (moved out of the way), the last story in its place
    assert moves(caplog) == ["sequence 1 copied to 3", "running sequence 2 moved to 1"]
    assert all(count_runs(seqs) == 1 for seqs in batches), batches
    assert texts == expected


def test_two_sequences_cancelled_in_one_step_leave_no_gap(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subjects = ["a baker", "a lost robot", "a sailor", "a young dragon", "a clever fox"]
    # the two cancelled last: nothing moves
    expected, _ = stories_cancelled(
        model_path, monkeypatch, [subjects[i] for i in (0, 3, 4, 1, 2)], [3, 4], parallel=5
    )
    # the two cancelled in 1 and 2: the stories in 3 and 4 move into their places
    texts, batches = stories_cancelled(model_path, monkeypatch, subjects, [1, 2], parallel=5)
    assert all(count_runs(seqs) == 1 for seqs in batches), batches
    assert texts == expected


def test_a_sequence_cancelled_with_a_queued_job_leaves_no_gap(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # three run, the fourth waits for a sequence; it and one running story are cancelled
    expected, _ = stories_cancelled(
        model_path, monkeypatch, ["a baker", "a sailor", "a lost robot", "a mouse"], [2, 3], 3
    )
    texts, batches = stories_cancelled(
        model_path, monkeypatch, ["a baker", "a lost robot", "a sailor", "a mouse"], [1, 3], 3
    )
    assert all(count_runs(seqs) == 1 for seqs in batches), batches
    assert texts == expected


def test_a_gap_left_while_a_prompt_is_read_closes_when_it_is_read(
    model_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams: list[EventStream] = []
    batches: list[set[int]] = []
    real_decode = batching.lc.llama_decode

    def decode(ctx: object, batch: object) -> int:
        count = batch.n_tokens  # type: ignore[attr-defined]
        seqs = [batch.seq_id[i][0] for i in range(count)]  # type: ignore[attr-defined]
        batches.append(set(seqs))
        status = int(real_decode(ctx, batch))
        if seqs.count(3) > 1 and not streams[1].cancelled:  # the long prompt is being read
            streams[1].cancel()
        return status

    monkeypatch.setattr(batching.lc, "llama_decode", decode)
    monkeypatch.setattr(engine_module, "BURST_WAIT_SECONDS", 30.0)
    caplog.set_level(logging.DEBUG)
    engine = load_engine(model_path, num_parallel=4)
    try:
        with ARRIVING.on_the_way():  # in sequences 0, 1, 2
            streams = [
                engine.submit(
                    CompletionJob(f"Once upon a time, {who}", sampling=GREEDY, max_tokens=60)
                )
                for who in ("a baker", "a lost robot", "a sailor")
            ]
        first = iter(streams[0])
        next(event for event in first if isinstance(event, TextDelta))
        # a prompt of several batches (256 tokens each) arrives beside them, in 3
        question = " ".join(f"Fact {n}: the number {n} comes after {n - 1}." for n in range(60))
        long = engine.submit(CompletionJob(chat(question), sampling=GREEDY, max_tokens=40))
        events = list(long)
        for stream in streams:
            list(stream)
        assert done(events).usage.completion_tokens == 40
        assert done(events).usage.prompt_tokens > 2 * 256
        # while it was read, sequence 1 ended: the gap stays (its prompt goes on in 3), and
        # closes once the prompt is read, by moving the new sequence into it
        assert "running sequence 3 moved to 1" in moves(caplog)
        # the steps while all three generate (the long answer's 40 tokens): one run each
        read = max(i for i, seqs in enumerate(batches) if 3 in seqs) + 1
        together = batches[read : read + 30]
        assert len(together) == 30 and all(count_runs(seqs) == 1 for seqs in together), batches
    finally:
        engine.close()
