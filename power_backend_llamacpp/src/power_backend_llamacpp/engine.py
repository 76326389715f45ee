"""One loaded GGUF model served by one native engine thread."""

from __future__ import annotations

import logging
import random
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import llama_cpp as lc

from power_backend_llamacpp.batching import ContinuousBatcher
from power_backend_llamacpp.cpu_share import ThreadGovernor
from power_backend_llamacpp.embedding import EmbeddingRunner
from power_backend_llamacpp.images import ImagePrompt, ImageReader, text_tokens
from power_backend_llamacpp.jobs import Choice, Job
from power_backend_llamacpp.lora import LoraAdapters
from power_backend_llamacpp.output_grammars import call_blocks_grammar, grammar_for
from power_backend_llamacpp.sampling import SamplerChain
from power_backend_llamacpp.text import ChoiceText
from power_backend_llamacpp.vocab import Vocabulary
from power_core.arrivals import ARRIVING
from power_core.chat.fitting import kept_count
from power_core.concurrency import (
    EventChannel,
    OneShot,
    WakeSignal,
    allocate_native_lock,
    run_on_native_thread,
    start_native_thread,
)
from power_core.engine import CompletionJob, EngineInfo, EventStream
from power_core.errors import (
    BackendUnavailable,
    Cancelled,
    ContextLengthExceeded,
    InvalidRequest,
    PowerError,
    UnsupportedFeature,
)
from power_core.types import EmbeddingResult, EngineEvent

T = TypeVar("T")

log = logging.getLogger(__name__)

#: An idle engine's thread ends while another engine's thread runs, at once when another
#: engine starts a thread and after this long otherwise (a new one starts with its next
#: job): llama.cpp's OpenMP build keeps a team of worker threads per calling thread, and
#: once libgomp manages more threads than there are cores it makes every team sleep
#: between decodes instead of spinning. Measured on 2 cores: a model decoded at 30
#: tokens/s instead of 90 once a second loaded model had run, until that model's thread
#: ended. A lone engine keeps its thread (no restart before each request).
IDLE_THREAD_SECONDS = 0.5

#: An idle engine with a new job waits up to this long for the generation requests still on
#: their way from the server (see :mod:`power_core.arrivals`), to start them in one step.
#: A burst of eight requests is read and queued within a few milliseconds.
BURST_WAIT_SECONDS = 0.025
#: a job that shifts its context and sets no max_tokens ends after this many contexts'
#: worth of output (as Ollama caps num_predict -1)
SHIFTED_OUTPUT_CONTEXTS = 10


class _EngineThreads:
    """The engines of this process and how many engine threads run."""

    def __init__(self) -> None:
        self._lock = allocate_native_lock()
        self._count = 0
        self._engines: weakref.WeakSet[LlamaCppEngine] = weakref.WeakSet()

    def started(self, engine: LlamaCppEngine) -> None:
        """``engine`` starts a thread: the idle ones of the other engines should leave."""
        with self._lock:
            self._count += 1
            self._engines.add(engine)
            others = [e for e in self._engines if e is not engine]
        for other in others:
            other._leave_when_idle()

    def ended(self) -> None:
        with self._lock:
            self._count -= 1

    def others(self) -> bool:
        """Whether an engine thread besides the caller's runs."""
        with self._lock:
            return self._count > 1


_threads = _EngineThreads()


class LlamaCppEngine:
    """A model and its context, driven by one native thread that batches every job.

    Built by :meth:`power_backend_llamacpp.LlamaCppBackend.load`, which hands over the
    native model and context; from then on only the engine thread decodes. ``submit``,
    ``tokenize`` and ``detokenize`` run on the caller's side (tokenizing is thread-safe);
    ``embed`` runs on the engine thread and is awaited without blocking greenlets.
    """

    def __init__(
        self,
        *,
        name: str,
        model: Any,
        ctx: Any,
        info: EngineInfo,
        n_parallel: int,
        n_batch: int,
        max_queue: int,
        n_threads: int,
        adapters: LoraAdapters,
        adapt_threads: bool = True,
        images: ImageReader | None = None,
    ) -> None:
        self.name = name
        self._images = images
        self.info = info
        self._model = model
        self._ctx = ctx
        self._n_ctx = info.context_length
        self._n_parallel = n_parallel
        self._vocab = Vocabulary(model)
        self._batcher = ContinuousBatcher(
            ctx,
            self._vocab,
            n_ctx_seq=info.context_length,
            n_parallel=n_parallel,
            n_batch=n_batch,
            max_queue=max_queue,
            images=images,
        )
        self._embedder = EmbeddingRunner(
            model, self._vocab, n_ctx=info.context_length, n_threads=n_threads, adapters=adapters
        )
        adapting = adapt_threads and n_threads > 1
        self._governor = ThreadGovernor(n_threads, self._set_threads) if adapting else None
        self._tasks: deque[Callable[[], None]] = deque()
        self._wake = WakeSignal()
        self._closing = False
        self._drained = False
        # made by close(): a OneShot belongs to the thread (and gevent hub) that waits on it,
        # and load() may run on a helper thread
        self._stopped: OneShot[None] | None = None
        self._finished = False
        self._thread_lock = allocate_native_lock()
        self._thread_alive = False
        self._asked_to_leave = False
        self._ensure_thread()

    # ------------------------------------------------------------------------ public API
    def submit(self, job: CompletionJob) -> EventStream:
        """Queue ``job``; see :meth:`power_core.engine.Engine.submit`."""
        self._check_open()
        images = self._image_prompt(job) if job.images else None
        try:
            return self._submit(job, images)
        except BaseException:
            if images is not None:
                images.free()
            raise

    def _submit(self, job: CompletionJob, images: ImagePrompt | None) -> EventStream:
        prompt = self._prompt_tokens(job) if images is None else images.tokens
        if len(prompt) >= self._n_ctx:
            tokens = f"{len(prompt)} token" + ("s" if len(prompt) != 1 else "")
            shown = " (images included)" if images is not None and images.runs else ""
            raise ContextLengthExceeded(
                f"the prompt has {tokens}{shown} but the context holds {self._n_ctx} "
                "(including the generated tokens); shorten it or load with a larger num_ctx",
                param="prompt",
            )
        if not 1 <= job.n <= self._n_parallel:
            raise InvalidRequest(
                f"n must be between 1 and {self._n_parallel} (the model's parallel sequences)",
                param="n",
            )
        if job.logprobs is not None and job.logprobs < 0:
            raise InvalidRequest("logprobs must be 0 or more", param="logprobs")
        grammar = grammar_for(job.json_mode, job.json_schema)
        if grammar is None and job.call_blocks is not None:
            grammar = call_blocks_grammar(job.call_blocks)
        seed = job.sampling.seed
        if seed is None:
            seed = random.getrandbits(32)
        max_tokens = job.max_tokens if job.max_tokens is not None and job.max_tokens >= 0 else None
        shift_keep = job.shift_keep
        if shift_keep is not None:
            bos = self._vocab.bos if self._vocab.adds_bos else None
            shift_keep = kept_count(shift_keep, prompt, bos)  # at most half the context
            if max_tokens is None:  # a model that never ends would otherwise run forever
                max_tokens = SHIFTED_OUTPUT_CONTEXTS * self._n_ctx

        def on_cancel() -> None:
            self._batcher.cancel(state)
            self._wake.set()

        channel: EventChannel[EngineEvent] = EventChannel(on_cancel=on_cancel)
        state = Job(
            prompt,
            channel,
            max_tokens=max_tokens,
            logprobs=job.logprobs,
            return_context=job.return_context,
            t_submit=time.perf_counter_ns(),
            shift_keep=shift_keep,
            images=images,
        )
        history = prompt if images is None else text_tokens(prompt)
        try:
            for index in range(job.n):
                # each choice gets its own seed so that n > 1 gives different completions
                sampler = SamplerChain(
                    self._vocab,
                    job.sampling,
                    seed=seed + index,
                    grammar=grammar,
                    history=history,
                    free_span=job.free_span,
                    call_blocks=job.call_blocks,
                )
                state.choices.append(Choice(state, index, sampler, ChoiceText(job.stop)))
            self._batcher.enqueue(state)
        except BaseException:
            state.free_samplers()
            raise
        self._ensure_thread()  # after the enqueue: an idle thread that ends sees the job
        self._wake.set()
        return channel

    def embed(
        self,
        inputs: list[str | list[int]],
        *,
        truncate: bool,
        cancelled: Callable[[], bool] | None = None,
    ) -> EmbeddingResult:
        """Embed ``inputs`` (one sequence each), pooled, unit length: each group of them is
        a task of the engine thread, so generations go on between groups, and
        ``cancelled()`` is asked between groups."""
        return self._embedder.embed(
            inputs, truncate=truncate, run=self._on_engine_thread, cancelled=cancelled
        )

    def prompt_length_with_images(self, text: str, images: list[bytes], *, add_bos: bool) -> int:
        """The tokens a text prompt showing ``images`` (by their tags) takes, laid out as
        :meth:`submit` lays it out: each image's own count, which some projectors make
        from the image's size."""
        prompt = self._with_images(text, images, add_bos=add_bos)
        try:
            return len(prompt.tokens)
        finally:
            prompt.free()

    def tokenize(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Token ids of ``text``, special tokens parsed."""
        return self._vocab.tokenize(text, add_special=add_bos)

    @property
    def longest_token_bytes(self) -> int:
        """The most bytes of text one token stands for (see :class:`Engine`)."""
        return self._vocab.longest_token_bytes

    def detokenize(self, tokens: list[int]) -> str:
        """Text of ``tokens`` (special tokens rendered)."""
        return self._vocab.detokenize(list(tokens))

    def active_jobs(self) -> int:
        """Jobs queued or running."""
        return self._batcher.active_jobs()

    def close(self) -> None:
        """Stop the engine thread (ending any job with :class:`Cancelled`) and free the model."""
        if self._closing:
            return
        stopped: OneShot[None] = OneShot()
        self._stopped = stopped
        self._closing = True
        self._ensure_thread()  # an idle engine has no thread: one starts to shut down
        self._wake.set()
        if not self._finished:  # else the thread is gone and may not have seen `stopped`
            stopped.wait()

    # ------------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closing:
            raise BackendUnavailable(f"the model '{self.name}' has been unloaded")

    def _image_prompt(self, job: CompletionJob) -> ImagePrompt:
        """``job``'s prompt tokenized with its images (read on a passing thread: decoding
        and resizing a photo takes a while)."""
        text = job.prompt
        if not isinstance(text, str) or job.suffix is not None:
            raise InvalidRequest(
                "images go with a text prompt (not token ids, nor a suffix)", param="images"
            )
        prompt = self._with_images(text, job.images, add_bos=job.add_bos)
        ends_with_image = any(
            start + run.length == len(prompt.tokens) for start, run in prompt.runs.items()
        )
        if ends_with_image or not prompt.tokens:
            prompt.free()
            problem = "must not end with an image" if prompt.tokens else "is empty"
            raise InvalidRequest(f"the prompt {problem}", param="prompt")
        return prompt

    def _with_images(self, text: str, images: list[bytes], *, add_bos: bool) -> ImagePrompt:
        """``text`` tokenized with the images its tags show, on a passing native thread."""
        reader = self._images
        if reader is None:
            raise UnsupportedFeature(
                f"the model '{self.name}' has no projector, so it cannot read images",
                param="images",
            )
        return run_on_native_thread(
            lambda: reader.prompt(text, images, add_bos=add_bos), "a3s-power-images"
        )

    def _prompt_tokens(self, job: CompletionJob) -> list[int]:
        vocab = self._vocab
        if isinstance(job.prompt, list):
            vocab.check_tokens(job.prompt)
            prefix = list(job.prompt)
        elif job.suffix is None:
            prefix = vocab.tokenize(job.prompt, add_special=job.add_bos)
        else:
            prefix = vocab.tokenize(job.prompt, add_special=False, parse_special=False)
        if job.suffix is not None:
            if not vocab.supports_fim:
                raise UnsupportedFeature(
                    f"the model '{self.name}' has no fill-in-the-middle tokens, so it cannot "
                    "complete with a suffix",
                    param="suffix",
                )
            suffix = vocab.tokenize(job.suffix, add_special=False, parse_special=False)
            head = [vocab.bos] if job.add_bos and vocab.adds_bos and vocab.bos >= 0 else []
            return [
                *head,
                vocab.fim_prefix,
                *prefix,
                vocab.fim_suffix,
                *suffix,
                vocab.fim_middle,
            ]
        if not prefix:
            if vocab.bos < 0:
                raise InvalidRequest("the prompt is empty", param="prompt")
            prefix = [vocab.bos]
        return prefix

    def _on_engine_thread(self, fn: Callable[[], T]) -> T:
        self._check_open()
        result: OneShot[T] = OneShot()

        def task() -> None:
            try:
                result.set_result(fn())
            except BaseException as exc:  # handed to the waiting side, which re-raises it
                result.set_error(exc)

        self._tasks.append(task)
        self._ensure_thread()
        if self._drained:
            # the engine thread has run its last tasks; take ours back unless it got it
            try:
                self._tasks.remove(task)
            except ValueError:
                pass
            else:
                raise BackendUnavailable(f"the model '{self.name}' has been unloaded")
        self._wake.set()
        return result.wait()

    def _ensure_thread(self) -> None:
        """Start the engine thread unless it runs (or the engine has shut down)."""
        with self._thread_lock:
            if not self._thread_alive and not self._finished:
                self._thread_alive = True
                _threads.started(self)
                start_native_thread(self._run, f"a3s-power-engine-{self.name}")

    def _run(self) -> None:
        went_idle = False
        try:
            went_idle = self._serve()
        finally:
            _threads.ended()
            if not went_idle:
                self._shutdown()

    def _serve(self) -> bool:
        """Run jobs and tasks until closing (False) or idle for a while (True)."""
        batcher = self._batcher
        while not self._closing:
            while self._tasks:
                self._tasks.popleft()()
            if batcher.idle():
                woken = self._wake.wait(IDLE_THREAD_SECONDS)
                asked, self._asked_to_leave = self._asked_to_leave, False
                if (asked or not woken) and _threads.others() and self._leave_if_idle():
                    return True
                continue
            if batcher.starts_from_idle() and ARRIVING.count():
                waited = ARRIVING.wait_until_none_on_the_way(self._wake.wait, BURST_WAIT_SECONDS)
                log.debug("waited %.1f ms for requests on their way", waited * 1000)
            if self._governor is not None:
                self._governor.before_decode()
            try:
                batcher.step()
            except Exception as exc:  # a bug must not strand clients: they get the error
                batcher.abort_all(PowerError(f"inference engine error: {exc!r}"))
        return False

    @property
    def decode_threads(self) -> int:
        """The threads llama.cpp decodes with now (fewer than loaded with while other
        processes keep cores busy: :mod:`power_backend_llamacpp.cpu_share`)."""
        ctx = self._ctx
        return int(lc.llama_n_threads(ctx)) if ctx is not None else 0

    def _set_threads(self, threads: int) -> None:
        lc.llama_set_n_threads(self._ctx, threads, threads)
        log.debug("%s decodes with %d thread(s)", self.name, threads)

    def _leave_when_idle(self) -> None:
        """Another engine started a thread: leave now if there is nothing to do."""
        self._asked_to_leave = True
        self._wake.set()

    def _leave_if_idle(self) -> bool:
        # Under the lock that _ensure_thread takes after every enqueue: work queued before
        # this check keeps the thread; work queued after it starts a new thread.
        with self._thread_lock:
            if self._closing or self._tasks or not self._batcher.idle():
                return False
            self._thread_alive = False
            return True

    def _shutdown(self) -> None:
        unloaded = Cancelled(f"the model '{self.name}' was unloaded")
        self._batcher.close(unloaded)
        self._drained = True
        while self._tasks:
            self._tasks.popleft()()
        self._embedder.close()
        if self._images is not None:
            self._images.close()
        if self._ctx is not None:
            lc.llama_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            self._vocab.close()  # a long prompt may be tokenized on another thread
            lc.llama_model_free(self._model)
            self._model = None
        self._finished = True
        if self._stopped is not None:
            self._stopped.set_result(None)
