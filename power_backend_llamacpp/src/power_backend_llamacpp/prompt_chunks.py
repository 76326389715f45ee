"""How much of each prompt a decode step reads, while other sequences generate or not.

Every step that reads part of a prompt is a pause, as long as the step, in the streams of
the sequences that generate beside it. These rules keep those pauses short, and keep a
short prompt from waiting behind a long one.
"""

from __future__ import annotations

from power_backend_llamacpp.jobs import Job

#: while sequences generate, prompts fill at most this fraction of a batch
PROMPT_SHARE_WHILE_GENERATING = 4
#: ... but at least this many tokens, so a prompt always advances
MIN_PROMPT_CHUNK = 16


def prompt_budget(capacity: int, generating: int) -> int:
    """How many prompt tokens one step reads beside the tokens of ``generating`` sequences.

    With nothing generating, a whole batch. While sequences generate, every step is a pause
    in their streams as long as the step: prompts then take a quarter of a batch per step
    between them (128 tokens of the default 512, never less than :data:`MIN_PROMPT_CHUNK`
    while the batch has room), so a long prompt arriving holds the others back for several
    short steps instead of a few long ones, for about as long in all. Ad hoc, engine alone
    on this 2-core VM, 4 sequences generating and a 1,650-token prompt arriving: its longest
    step took 288 ms instead of 1,023, its first token came after 3.05 s instead of 2.98;
    with flash attention, whose prompt reading gains more from large batches, 291 ms
    instead of 746, and 2.88 s instead of 2.30 (``bench long_prompt`` measures it through
    the server).
    """
    room = capacity - generating
    if not generating:
        return room
    return min(room, max(capacity // PROMPT_SHARE_WHILE_GENERATING, MIN_PROMPT_CHUNK))


def prompt_takes(jobs: list[Job], budget: int) -> list[int]:
    """How many tokens each prompting job reads this step: the shortest rest first, so a
    short question is not held behind a long document being read (the batch still lists
    the jobs in ascending sequence order)."""
    takes = [0] * len(jobs)
    for index in sorted(range(len(jobs)), key=lambda i: len(jobs[i].prompt) - jobs[i].prompt_done):
        if budget <= 0:
            break
        job = jobs[index]
        takes[index] = min(budget, len(job.prompt) - job.prompt_done)
        budget -= takes[index]
    return takes
