"""The engine's bookkeeping for one submitted job and each of its choices (sequences)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from power_core.concurrency import EventChannel
from power_core.types import EngineEvent, FinishReason, TokenLogprob

if TYPE_CHECKING:
    from power_backend_llamacpp.images import ImagePrompt
    from power_backend_llamacpp.sampling import SamplerChain
    from power_backend_llamacpp.text import ChoiceText


class Choice:
    """One independent completion of a job, decoded as its own llama.cpp sequence."""

    __slots__ = (
        "completion_tokens",
        "index",
        "job",
        "last_token",
        "logprobs",
        "n_past",
        "out_index",
        "reason",
        "sampler",
        "seq_id",
        "shifted",
        "text",
        "tokens",
    )

    def __init__(self, job: Job, index: int, sampler: SamplerChain, text: ChoiceText) -> None:
        self.job = job
        self.index = index
        self.sampler = sampler
        self.text = text
        self.seq_id = -1
        #: tokens of this sequence in the KV cache (the next token goes at this position)
        self.n_past = 0
        self.last_token = -1
        #: where this choice's logits are in the current batch
        self.out_index = -1
        self.completion_tokens = 0
        self.reason: FinishReason | None = None
        #: log-probabilities not yet sent (their text is held for a stop string or a split
        #: character)
        self.logprobs: list[TokenLogprob] = []
        #: generated token ids (the first ``n_past - len(prompt)`` are in the KV cache,
        #: unless the context was shifted)
        self.tokens: list[int] = []
        #: part of the context was dropped to go on (see ``ContinuousBatcher._shift``)
        self.shifted = False


class Job:
    """A submitted :class:`~power_core.engine.CompletionJob`, tokenized and ready to run."""

    __slots__ = (
        "cached_tokens",
        "cancelled",
        "channel",
        "choices",
        "images",
        "logprobs",
        "max_tokens",
        "open_choices",
        "out_index",
        "prompt",
        "prompt_done",
        "return_context",
        "shift_keep",
        "t_prompt_end",
        "t_prompt_start",
        "t_submit",
    )

    def __init__(
        self,
        prompt: list[int],
        channel: EventChannel[EngineEvent],
        *,
        max_tokens: int | None,
        logprobs: int | None,
        return_context: bool,
        t_submit: int,
        shift_keep: int | None = None,
        images: ImagePrompt | None = None,
    ) -> None:
        self.prompt = prompt
        #: the prompt's images (``prompt`` holds their positions), freed when the job ends
        self.images = images
        self.max_tokens = max_tokens
        #: when the context fills: ``None`` ends the choice; else the first tokens kept
        #: while the older half of the rest is dropped
        self.shift_keep = shift_keep
        self.logprobs = logprobs
        self.return_context = return_context
        self.t_submit = t_submit
        self.t_prompt_start = 0
        self.t_prompt_end = 0
        #: prompt tokens already decoded (into choice 0's sequence)
        self.prompt_done = 0
        #: of those, how many its sequence held from an earlier job (the prompt cache)
        self.cached_tokens = 0
        self.out_index = -1
        self.choices: list[Choice] = []
        self.open_choices = 0
        #: set from the consumer's side; the engine thread acts on it at its next step
        self.cancelled = False
        #: created by ``submit`` on the consumer's side; the engine only puts and closes
        self.channel = channel

    def text_ahead(self) -> int:
        """Prompt tokens from ``prompt_done`` up to the next image (or the end): what the
        next batch may read of this prompt."""
        end = len(self.prompt) if self.images is None else self.images.next_start(self.prompt_done)
        return end - self.prompt_done

    def kv_tokens(self, choice: Choice) -> list[int]:
        """The tokens in ``choice``'s KV cells, from position 0 (none once shifted: the
        moved cells are not what decoding those tokens afresh would give)."""
        if choice.shifted:
            return []
        if choice.n_past:
            return self.prompt + choice.tokens[: choice.n_past - len(self.prompt)]
        if choice is self.choices[0]:  # ended while its prompt was being read
            return self.prompt[: self.prompt_done]
        return []

    def free_samplers(self) -> None:
        for choice in self.choices:
            choice.sampler.free()

    def free_images(self) -> None:
        if self.images is not None:
            self.images.free()
