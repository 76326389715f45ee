"""Continuous batching: every running sequence advances in one shared ``llama_decode``.

Each :meth:`ContinuousBatcher.step` puts the next token of every generating sequence and
chunks of newly admitted prompts (up to the batch size, a quarter of it while sequences
generate: :mod:`power_backend_llamacpp.prompt_chunks`) into one batch, decodes it, then
samples each sequence with its own sampler chain. Everything here runs on the engine's one
native thread, except :meth:`enqueue` and :meth:`cancel`, which are called from ``submit``
and from a stream's ``cancel()`` on the consumer's side.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import llama_cpp as lc

from power_backend_llamacpp.batch import BatchBuffer
from power_backend_llamacpp.images import text_tokens
from power_backend_llamacpp.jobs import Choice, Job
from power_backend_llamacpp.logprobs import token_logprob
from power_backend_llamacpp.prompt_chunks import prompt_budget, prompt_takes
from power_backend_llamacpp.slots import SequenceSlots
from power_backend_llamacpp.vocab import Vocabulary
from power_core.concurrency import allocate_native_lock
from power_core.errors import BackendUnavailable, PowerError, ServerBusy
from power_core.types import (
    ChoiceDone,
    FinishReason,
    GenerationDone,
    PromptProgress,
    TextDelta,
    Usage,
)

if TYPE_CHECKING:
    from power_backend_llamacpp.images import ImageReader

log = logging.getLogger(__name__)

#: a job that may generate fewer tokens than this is not worth copying a sequence for
#: (see :mod:`power_backend_llamacpp.slots`)
MOVE_MIN_TOKENS = 16


def sequences_can_move(ctx: Any) -> bool:
    """Whether a sequence's cells can be copied whole to another sequence id: a plain KV
    cache (not recurrent, hybrid or sliding-window)."""
    model = lc.llama_get_model(ctx)
    if lc.llama_model_is_recurrent(model) or lc.llama_model_is_hybrid(model):
        return False
    return int(lc.llama_model_n_swa(model)) == 0


class ContinuousBatcher:
    """The scheduler of one context: a queue of jobs and up to ``n_parallel`` sequences."""

    def __init__(
        self,
        ctx: Any,
        vocab: Vocabulary,
        *,
        n_ctx_seq: int,
        n_parallel: int,
        n_batch: int,
        max_queue: int,
        images: ImageReader | None = None,
    ) -> None:
        self._ctx = ctx
        self._images = images
        self._memory = lc.llama_get_memory(ctx)
        self._vocab = vocab
        self._n_ctx_seq = n_ctx_seq
        self._max_jobs = n_parallel + max_queue
        self._batch = BatchBuffer(n_batch)
        self._slots = SequenceSlots(self._memory, n_parallel, can_move=sequences_can_move(ctx))
        self._can_shift = bool(lc.llama_memory_can_shift(self._memory))
        self._pending: deque[Job] = deque()
        self._prompting: list[Job] = []
        self._generating: list[Choice] = []
        self._running: list[Job] = []
        self._lock = allocate_native_lock()
        self._active = 0
        self._cancel_requested = False
        self._closed: PowerError | None = None

    # consumer side -------------------------------------------------------------------------
    def enqueue(self, job: Job) -> None:
        """Queue ``job``; :class:`ServerBusy` once ``n_parallel + max_queue`` jobs are in."""
        with self._lock:
            if self._closed is not None:
                raise BackendUnavailable(f"the model cannot take jobs: {self._closed.message}")
            if self._active >= self._max_jobs:
                raise ServerBusy("the model's request queue is full, please try again")
            self._active += 1
            self._pending.append(job)

    def cancel(self, job: Job) -> None:
        """Mark ``job`` cancelled; the engine drops it at its next step."""
        job.cancelled = True
        self._cancel_requested = True

    def active_jobs(self) -> int:
        with self._lock:
            return self._active

    # engine thread -------------------------------------------------------------------------
    def idle(self) -> bool:
        return not self._running and not self._pending

    def starts_from_idle(self) -> bool:
        """Jobs are queued and none runs: the next step starts only new prompts."""
        return not self._running and bool(self._pending)

    def step(self) -> None:
        """Admit, decode one batch, sample every sequence that produced logits."""
        if self._cancel_requested:
            self._cancel_requested = False
            self._drop_cancelled()
        self._admit()
        if self._images is not None:
            self._read_images(self._images)
        batch = self._batch
        n = 0
        generating = self._generating
        for choice in generating:
            batch.add_one(n, choice.last_token, choice.n_past, choice.seq_id)
            choice.out_index = n
            n += 1
        chunks: list[tuple[Job, int]] = []
        prompting = self._prompting  # ascending sequence ids, as the generating ones
        takes = prompt_takes(prompting, prompt_budget(batch.capacity, n), batch.capacity - n)
        for job, take in zip(prompting, takes, strict=True):
            if not take:
                continue
            start = job.prompt_done
            last = start + take == len(job.prompt)
            batch.add_run(n, job.prompt[start : start + take], start, job.choices[0].seq_id, last)
            if not job.t_prompt_start:
                job.t_prompt_start = time.perf_counter_ns()
            if last:
                job.out_index = n + take - 1
            chunks.append((job, take))
            n += take
        if n == 0:
            return
        batch.batch.n_tokens = n
        status = lc.llama_decode(self._ctx, batch.batch)
        if status != 0:
            self._fail_batch(status, chunks)
            return
        finished = False
        for choice in generating:
            choice.n_past += 1
            self._sample(choice, choice.out_index)
            finished = finished or choice.reason is not None
        if finished:
            self._generating = [c for c in self._generating if c.reason is None]
            self._close_gap()
        started = False
        for job, take in chunks:
            job.prompt_done += take
            job.channel.put(PromptProgress(processed=job.prompt_done, total=len(job.prompt)))
            if job.prompt_done == len(job.prompt):
                self._start_generation(job)
                started = True
        if started:
            # a sequence that ended while a prompt was read left a gap the prompt's did not
            # fill (gaps stay open while prompts are read, see _close_gap)
            self._close_gap()

    def _admit(self) -> None:
        pending = self._pending
        if not pending:
            return
        admitted = 0
        slots = self._slots
        caches = self._caches_wanted()
        while pending and slots.free_count() >= len(pending[0].choices):
            job = pending.popleft()
            if job.cancelled:
                self._end_job(job, "cancelled")
                continue
            # the caches that the jobs admitted after this one will take
            keep = frozenset(seq for seq in caches[admitted + 1 :] if seq >= 0)
            first = job.choices[0]
            may_move = job.max_tokens is None or job.max_tokens >= MOVE_MIN_TOKENS
            first.seq_id, job.cached_tokens = slots.take_for(
                job.prompt, may_move=may_move, keep=keep
            )
            if job.images is not None:
                self._cache_whole_images(job, first.seq_id)
            job.prompt_done = job.cached_tokens
            for choice in job.choices[1:]:
                choice.seq_id = slots.take_empty(may_move=may_move, keep=keep)
            job.open_choices = len(job.choices)
            self._running.append(job)
            self._prompting.append(job)
            admitted += 1
        # llama.cpp splits a batch into one pass per run of ascending, consecutive sequence
        # ids; jobs placed beside the running ones are admitted in no such order
        self._prompting.sort(key=lambda job: job.choices[0].seq_id)
        if admitted:
            log.debug(
                "%d job(s) admitted, %d running in sequences %s",
                admitted,
                len(self._running),
                sorted(c.seq_id for job in self._running for c in job.choices if c.seq_id >= 0),
            )

    def _cache_whole_images(self, job: Job, seq: int) -> None:
        """A cache that ends inside an image is kept up to where the image starts."""
        assert job.images is not None
        kept = job.images.boundary(job.cached_tokens)
        if kept < job.cached_tokens:
            if not lc.llama_memory_seq_rm(self._memory, seq, kept, -1):
                # a memory that cannot drop its tail (recurrent) starts empty instead
                lc.llama_memory_seq_rm(self._memory, seq, 0, -1)
                kept = 0
            job.cached_tokens = kept

    def _read_images(self, images: ImageReader) -> None:
        """Every prompt whose reading reached an image reads it (and any right after it),
        each in a decode of its own, before this step's batch."""
        for job in list(self._prompting):
            if job.images is None:
                continue
            run = job.images.runs.get(job.prompt_done)
            while run is not None:
                if not job.t_prompt_start:
                    job.t_prompt_start = time.perf_counter_ns()
                seq = job.choices[0].seq_id
                try:
                    images.read(self._ctx, run, job.prompt_done, seq, self._batch.capacity)
                except PowerError as exc:
                    self._abort(job, exc)
                    break
                job.prompt_done += run.length
                job.channel.put(PromptProgress(processed=job.prompt_done, total=len(job.prompt)))
                run = job.images.runs.get(job.prompt_done)

    def _close_gap(self) -> None:
        """A sequence that finished (or was cancelled) between running ones splits every
        later step into two passes over the weights; the highest running sequence moves into
        the gap (a whole stream copy, about 10 ms here, against 8-11 ms per step) unless it
        is nearly done, and so on while gaps remain (several can end in one step)."""
        generating = self._generating
        if self._prompting or self._pending:
            return  # a queued job fills the gap at the next step, and keeps its own cache
        while len(generating) >= 2:
            last = generating[-1]  # ascending sequence ids
            job = last.job
            if job.cancelled or last.shifted:
                return  # a shifted sequence stays: a copy would carry its pending rotation
            left = None if job.max_tokens is None else job.max_tokens - last.completion_tokens
            if left is not None and left < MOVE_MIN_TOKENS:
                return
            gap = self._slots.close_gap({c.seq_id for c in generating}, last.seq_id)
            if gap is None:
                return
            last.seq_id = gap
            generating.sort(key=lambda c: c.seq_id)

    def _queued(self) -> list[Job]:
        """The queued jobs now: ``enqueue`` appends from other threads, and iterating a deque
        while it grows raises."""
        with self._lock:
            return list(self._pending)

    def _caches_wanted(self) -> list[int]:
        """For each job this step will admit, in order, the sequence holding the cache it
        would take (-1 for none)."""
        slots = self._slots
        room = slots.free_count()
        caches = []
        for job in self._queued():
            if job.cancelled:
                continue
            room -= len(job.choices)
            if room < 0:
                break
            caches.append(slots.best_cache(job.prompt)[0])
        return caches

    def _start_generation(self, job: Job) -> None:
        self._prompting.remove(job)
        job.t_prompt_end = time.perf_counter_ns()
        first = job.choices[0]
        for choice in job.choices:
            choice.n_past = len(job.prompt)
            if choice is not first:
                # n > 1: the other sequences start from a copy of the prompt's KV cells
                lc.llama_memory_seq_cp(self._memory, first.seq_id, choice.seq_id, -1, -1)
        if job.max_tokens == 0:
            for choice in job.choices:
                self._finish_choice(choice, "length")
            return
        for choice in job.choices:
            self._sample(choice, job.out_index)
            if choice.reason is None:
                self._generating.append(choice)
        # llama.cpp decodes a batch whose sequence ids ascend in one pass but splits one
        # whose ids fall, at about half the throughput (bench: `ceiling`), so keep order
        self._generating.sort(key=lambda c: c.seq_id)

    def _sample(self, choice: Choice, index: int) -> None:
        """Choose ``choice``'s next token from batch output ``index`` and emit its text."""
        token = choice.sampler.sample(self._ctx, index)
        vocab = self._vocab
        if vocab.is_eog(token):
            self._finish_choice(choice, "stop")
            return
        job = choice.job
        choice.completion_tokens += 1
        if job.logprobs is not None:
            choice.logprobs.append(token_logprob(self._ctx, index, token, job.logprobs, vocab))
        choice.tokens.append(token)
        text, stopped = choice.text.feed(vocab.piece(token))
        if text:
            job.channel.put(TextDelta(choice.index, text, choice.logprobs))
            if choice.logprobs:
                choice.logprobs = []
        if stopped:
            self._finish_choice(choice, "stop")
        elif job.max_tokens is not None and 0 < job.max_tokens <= choice.completion_tokens:
            self._finish_choice(choice, "length")
        elif choice.n_past + 1 >= self._n_ctx_seq and not self._shift(choice):
            # prompt and output now fill the context: this token takes its last cell
            self._finish_choice(choice, "length")
        else:
            choice.last_token = token

    def _shift(self, choice: Choice) -> bool:
        """Make room in ``choice``'s full context, as Ollama does: keep the job's first
        tokens (at most half the context), drop the older half of the rest and move the
        newer half down (llama.cpp re-rotates those keys at the next decode). False when the
        job does not shift or llama.cpp cannot shift this model's memory."""
        keep = choice.job.shift_keep
        if keep is None or not self._can_shift:
            return False
        keep = min(keep, choice.n_past // 2)
        discard = (choice.n_past - keep) // 2
        if discard < 1:
            return False
        seq = choice.seq_id
        if not lc.llama_memory_seq_rm(self._memory, seq, keep, keep + discard):
            return False
        lc.llama_memory_seq_add(self._memory, seq, keep + discard, -1, -discard)
        choice.n_past -= discard
        choice.shifted = True
        log.debug("sequence %d full: %d tokens dropped after the first %d", seq, discard, keep)
        return True

    def _finish_choice(self, choice: Choice, reason: FinishReason) -> None:
        job = choice.job
        tail = choice.text.flush()
        if tail or choice.logprobs:
            job.channel.put(TextDelta(choice.index, tail, choice.logprobs))
            choice.logprobs = []
        choice.reason = reason
        stop = choice.text.matched if reason == "stop" else None
        job.channel.put(ChoiceDone(choice.index, reason, choice.completion_tokens, stop))
        self._release_sequence(choice)
        job.open_choices -= 1
        if job.open_choices == 0:
            self._end_job(job, job.choices[0].reason or reason)

    def _release_sequence(self, choice: Choice, *, keep: bool = True) -> None:
        """Free ``choice``'s sequence; its cells stay as a prompt cache if ``keep``."""
        if choice.seq_id >= 0:
            kept = choice.job.kv_tokens(choice) if keep else None
            self._slots.release(choice.seq_id, kept)
            choice.seq_id = -1
        choice.sampler.free()

    def _end_job(self, job: Job, reason: FinishReason, error: PowerError | None = None) -> None:
        """The last word on a job: usage, then the channel closes (with ``error`` if given)."""
        if job in self._running:
            self._running.remove(job)
        job.free_samplers()
        job.free_images()
        with self._lock:
            self._active -= 1
        if error is not None:
            job.channel.close(error)
            return
        now = time.perf_counter_ns()
        prompt_end = job.t_prompt_end or now
        context = None
        first = job.choices[0]
        if job.return_context:
            context = job.prompt + first.tokens
            if job.images is not None:
                context = text_tokens(context)
        usage = Usage(
            prompt_tokens=len(job.prompt),
            cached_tokens=job.cached_tokens,
            completion_tokens=sum(c.completion_tokens for c in job.choices),
            prompt_eval_ns=prompt_end - job.t_prompt_start if job.t_prompt_start else 0,
            eval_ns=now - prompt_end,
            total_ns=now - job.t_submit,
            context=context,
        )
        job.channel.put(GenerationDone(usage=usage, reason=reason))
        job.channel.close()

    def _drop_cancelled(self) -> None:
        """Cancelled jobs leave now; their KV cells are freed even mid-prompt."""
        for job in [j for j in self._running if j.cancelled]:
            if job in self._prompting:
                self._prompting.remove(job)
            for choice in job.choices:
                if choice.reason is None:
                    self._finish_choice(choice, "cancelled")
        self._generating = [c for c in self._generating if c.reason is None]
        if any(job.cancelled for job in self._queued()):
            kept: deque[Job] = deque()
            while self._pending:
                job = self._pending.popleft()
                if job.cancelled:
                    self._end_job(job, "cancelled")
                else:
                    kept.append(job)
            # a job submitted meanwhile was popped and kept too, or lands behind these
            self._pending.extendleft(reversed(kept))
        self._close_gap()  # after the queue: a cancelled queued job fills no gap

    def _fail_batch(self, status: int, chunks: list[tuple[Job, int]]) -> None:
        """A decode failed: every job in the batch ends with an error, the rest go on."""
        error = PowerError(f"llama_decode failed with status {status}")
        jobs = {id(c.job): c.job for c in self._generating}
        jobs.update((id(job), job) for job, _ in chunks)
        for job in jobs.values():
            self._abort(job, error)

    def _abort(self, job: Job, error: PowerError) -> None:
        if job in self._prompting:
            self._prompting.remove(job)
        for choice in job.choices:
            if choice.reason is None:
                choice.reason = "error"
                self._release_sequence(choice, keep=False)  # the failed decode's cells
        self._generating = [c for c in self._generating if c.reason is None]
        self._end_job(job, "error", error)

    def close(self, error: PowerError) -> None:
        """Refuse new jobs (raising ``error``) and end every job with it."""
        with self._lock:
            self._closed = error
        self.abort_all(error)

    def abort_all(self, error: PowerError) -> None:
        """End every running and queued job with ``error`` (engine closing or broken)."""
        for job in list(self._running):
            self._abort(job, error)
        while self._pending:
            self._end_job(self._pending.popleft(), "error", error)
        self._slots.forget_all()  # after an engine error no cell is trusted
