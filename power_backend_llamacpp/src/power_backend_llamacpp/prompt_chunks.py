"""How much of each prompt a decode step reads, while other sequences generate or not.

Every step that reads part of a prompt is a pause, as long as the step, in the streams of
the sequences that generate beside it. These rules keep those pauses short, and keep a
short prompt from waiting behind a long one.
"""

from __future__ import annotations

from power_backend_llamacpp.jobs import Job

#: while sequences generate, prompts fill each step up to this fraction of a batch ...
PROMPT_SHARE_WHILE_GENERATING = 4
#: ... and take at least this fraction of it, however many sequences generate
MIN_PROMPT_SHARE = 8
#: ... and never fewer than this many tokens while the batch has room
MIN_PROMPT_CHUNK = 16
#: a prompt whose whole rest fits in the budget and 1/this of it again is read whole
FINISH_STRETCH = 2


def prompt_budget(capacity: int, generating: int) -> int:
    """How many prompt tokens one step reads beside the tokens of ``generating`` sequences.

    With nothing generating, a whole batch. While sequences generate, every step is a pause
    in their streams as long as the step: prompts then fill the step up to a quarter of a
    batch (128 tokens in all with the default 512), and take at least an eighth of a batch
    however many sequences generate. A long prompt arriving holds the others back for
    several short steps instead of a few long ones, for about as long in all.

    Filling the step to a quarter, rather than giving prompts a quarter beside the
    generating tokens, matters with flash attention: through the server (``bench
    long_prompt``, 4 streams generating, 2 rounds each), steps of 128 tokens in all paused
    the streams for 274 ms at worst and gave the new prompt its first token 1.14 times as
    late as ``llama-server``, steps of 132 for 477 ms and 1.30 times; without flash
    attention both gave 292-296 ms and 1.27-1.29 times.

    A burst of prompts at an idle model pays for it at its tail: 8 prompts of about 130
    tokens arriving together (engine alone, 3 rounds) had their first tokens after 0.55 s
    (median) and 0.93 s (worst), against 0.80 and 0.88 s with whole batches, because the
    first prompts read then generate beside the rest (before :func:`prompt_takes` read a
    prompt that nearly fits whole: 0.65 and 1.00 s).
    """
    room = capacity - generating
    if not generating:
        return room
    fill = capacity // PROMPT_SHARE_WHILE_GENERATING - generating
    return min(room, max(fill, capacity // MIN_PROMPT_SHARE, MIN_PROMPT_CHUNK))


def prompt_takes(jobs: list[Job], budget: int, room: int) -> list[int]:
    """How many tokens each prompting job reads this step (up to its next image, which the
    engine reads alone: :mod:`power_backend_llamacpp.images`): the shortest rest first, so a
    short question is not held behind a long document being read (the batch still lists
    the jobs in ascending sequence order).

    A prompt whose whole rest fits in the budget and half as much again (and in the
    ``room`` the batch has) is read whole rather than split: split, its first token waits
    a whole step more; whole, the step is a few tokens longer. A burst of short prompts
    arriving while the first of them already generates is then read in one step, not two.
    """
    finish_limit = min(room, budget + budget // FINISH_STRETCH)
    takes = [0] * len(jobs)
    used = 0
    for index in sorted(range(len(jobs)), key=lambda i: jobs[i].text_ahead()):
        job = jobs[index]
        rest = job.text_ahead()
        whole = used < budget and used + rest <= finish_limit
        take = rest if whole else min(rest, budget - used)
        if take <= 0:
            break
        takes[index] = take
        used += take
        if take < rest:
            break
    return takes
