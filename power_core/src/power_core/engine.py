"""The interface between the core and an inference backend.

A :class:`Backend` is registered by a plugin (see :mod:`power_core.hookspecs`). The core's
scheduler asks it to :meth:`Backend.load` a model, which gives an :class:`Engine`. The core
submits :class:`CompletionJob` values and reads :data:`~power_core.types.EngineEvent` values
back through an :class:`EventStream`. Chat templating, tool-call parsing and reasoning
separation happen in the core, so a backend only turns prompts into tokens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from power_core.types import EmbeddingResult, EngineEvent, LoadOptions, SamplingOptions


@dataclass(frozen=True)
class LoadSpec:
    """Everything a backend needs to load one model."""

    name: str
    path: Path
    digest: str
    #: the model file's format, e.g. ``"gguf"``
    format: str
    options: LoadOptions
    #: metadata from the model file's header (GGUF key/value pairs)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: GGUF LoRA adapters to apply on top of the weights, in order, each at scale 1 (only
    #: for a backend whose ``applies_adapters`` is true; the core checked that each fits
    #: the weights when the model was created)
    adapters: tuple[Path, ...] = ()
    #: the multimodal projector (an mmproj GGUF: the manifest's ``projector`` layer) that
    #: turns images into embeddings the model reads; a backend that reads images with it
    #: says so in :attr:`EngineInfo.reads_images`
    projector: Path | None = None


@dataclass(frozen=True)
class QuantizeSpec:
    """One model file a backend is asked to quantize (its optional ``quantize``)."""

    #: the model file to read: F32, F16 or BF16 weights
    source: Path
    #: where to write the result: a path in the store's temp area, absent beforehand
    destination: Path
    #: the type asked for, one of :data:`power_core.quantize.QUANTIZE_TYPES` (``"Q4_K_M"``)
    file_type: str
    #: ``progress(done, total)``: tensors written so far and in all, called on the
    #: quantizing thread (it only queues the report)
    progress: Callable[[int, int], None]


@dataclass(frozen=True)
class EngineInfo:
    """Facts about a loaded model that API surfaces report."""

    #: tokens of context available to each sequence
    context_length: int
    #: the floats of an embedding vector (a model's output width)
    embedding_length: int
    vocab_size: int
    #: bytes the loaded model occupies (weights + caches)
    size_bytes: int
    #: the part of them in GPU memory (Ollama's ``size_vram``): 0 on the CPU alone
    gpu_bytes: int = 0
    #: whether fill-in-the-middle (``suffix``) prompts are supported
    supports_fim: bool = False
    #: whether jobs may carry :attr:`CompletionJob.images` (a projector was loaded)
    reads_images: bool = False
    #: about how many prompt tokens an image takes (a photo's, for a projector whose count
    #: follows the image's size): what fitting a conversation to the context counts for each
    image_tokens: int = 0


#: where a prompt shows image ``N`` of :attr:`CompletionJob.images`, as Ollama's runner
#: reads its prompts: ``[img-0]``, ``[img-1]``, ...
IMAGE_TAG = re.compile(r"\[img-(\d+)\]")


def image_tag(index: int) -> str:
    """The tag that shows image ``index`` in a prompt."""
    return f"[img-{index}]"


@dataclass(frozen=True)
class FreeSpan:
    """Output that a job's grammar leaves alone: a span at the start of the output, from
    ``opener`` to ``closer`` (a model's reasoning, ``<think>`` to ``</think>``), before the
    answer that the grammar constrains."""

    opener: str
    closer: str
    #: the prompt already opened the span: the output starts inside it
    opened: bool = False


@dataclass(frozen=True)
class CallBlocks:
    """Tool calls that output may write in blocks from ``opener`` to ``closer``
    (``<tool_call>`` ... ``</tool_call>``), each holding one JSON call that matches
    ``call_schema``. The model chooses freely whether to call: output is unconstrained
    until it writes an opener, and from there on it is such blocks (one, or ``several``
    apart by whitespace), then its end. An opener inside ``reasoning`` does not count."""

    opener: str
    closer: str
    call_schema: dict[str, Any]
    several: bool = True
    reasoning: FreeSpan | None = None


@dataclass
class CompletionJob:
    """One request to continue a prompt, as a backend sees it."""

    #: text (tokenized by the engine with special tokens parsed) or token ids
    prompt: str | list[int]
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    #: ``None`` or ``-1``: until end-of-generation or the context is full
    max_tokens: int | None = None
    #: strings that end a choice; never emitted, held back across token boundaries
    stop: list[str] = field(default_factory=list)
    #: constrain output to JSON; with ``json_schema`` to JSON matching it
    json_mode: bool = False
    json_schema: dict[str, Any] | None = None
    #: with ``json_mode``: the span the grammar starts after, so that a model reasons
    #: freely before its constrained answer; output that begins with something else than
    #: the span's opener is constrained from there on. An engine that cannot start its
    #: grammar late may ignore it (the reasoning is then constrained too)
    free_span: FreeSpan | None = None
    #: without ``json_mode``: the tool calls a grammar constrains from their first opener
    #: on (llama.cpp's server calls such a grammar lazy). An engine that cannot start a
    #: grammar late may ignore it: the calls are then read as the model writes them
    call_blocks: CallBlocks | None = None
    #: ``None``: off; ``0``: chosen-token log-probabilities; ``k``: and the top ``k``
    logprobs: int | None = None
    #: independent completions sharing the prompt's KV cells
    n: int = 1
    #: prepend the model's BOS token when tokenizing a text prompt
    add_bos: bool = True
    #: fill-in-the-middle: ``prompt`` is the prefix and this the suffix
    suffix: str | None = None
    #: return the prompt + output token ids of choice 0 in the final usage
    return_context: bool = False
    #: when prompt and output fill the context: ``None`` ends the choice (``length``); a
    #: number keeps that many first tokens, drops the older half of the rest and goes on
    #: (Ollama's context shift), then ``max_tokens`` defaults to ten contexts' worth
    shift_keep: int | None = None
    #: encoded images (PNG, JPEG, ...) that a text ``prompt`` shows where it has their tags
    #: (:data:`IMAGE_TAG`, the index into this list); images without a tag are not read.
    #: Only for an engine whose :attr:`EngineInfo.reads_images` is true
    images: list[bytes] = field(default_factory=list)


@runtime_checkable
class EventStream(Protocol):
    """An iterator of events that can be cancelled from the consuming side."""

    def __iter__(self) -> Iterator[EngineEvent]: ...

    def cancel(self) -> None:
        """Stop producing: the job leaves the engine within one step and frees its memory."""
        ...


@runtime_checkable
class Engine(Protocol):
    """One loaded model, able to serve many jobs at once.

    Optionally it has ``longest_token_bytes: int``, the most bytes of text one token
    stands for: a conversation too long for the context is then trimmed without
    tokenizing candidates that surely cannot fit (a text of ``n`` bytes has at least
    ``n / longest_token_bytes`` tokens).
    """

    info: EngineInfo

    def submit(self, job: CompletionJob) -> EventStream:
        """Queue a job; events arrive on the returned stream, the last one ``GenerationDone``.

        Raises :class:`~power_core.errors.ServerBusy` when the engine's queue is full and
        :class:`~power_core.errors.ContextLengthExceeded` when the prompt cannot fit.
        """
        ...

    def embed(self, inputs: list[str | list[int]], *, truncate: bool) -> EmbeddingResult:
        """Embed every input (one sequence each), pooled and L2-normalised; the lengths
        before normalising go in :attr:`EmbeddingResult.norms` (optional: without them
        the legacy ``/api/embeddings`` answers unit vectors too). A backend whose ``embed``
        also takes a keyword ``cancelled`` (a ``Callable[[], bool]``) is given one when the
        request's client can leave: it asks it now and then, and raises
        :class:`~power_core.errors.Cancelled` once it says ``True``."""
        ...

    def tokenize(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Token ids of ``text``, special tokens parsed."""
        ...

    def detokenize(self, tokens: list[int]) -> str:
        """Text of token ids."""
        ...

    def active_jobs(self) -> int:
        """Jobs queued or running; the scheduler never unloads an engine with any."""
        ...

    def close(self) -> None:
        """Stop the engine's thread and free the model."""
        ...


@runtime_checkable
class Backend(Protocol):
    """A plugin's inference engine factory.

    Optionally it has ``check_options(options: LoadOptions) -> None``, which raises
    :class:`~power_core.errors.InvalidRequest` for load options it cannot honour; the
    scheduler asks before it unloads a model to reload it with a request's options.

    Optionally it has ``effective_options(options: LoadOptions) -> LoadOptions``: the
    options as it would load them, with values that change nothing for it made equal (the
    llama.cpp backend without GPUs: every ``num_gpu`` and ``main_gpu``); the scheduler
    compares those, so a request differing only in such values reuses the loaded model.

    Optionally it has ``quantize(spec: QuantizeSpec) -> None`` (see :class:`Quantizer`):
    ``create`` with ``quantize`` asks the first backend that has it and ``supports()`` the
    model's format.

    Optionally it has ``applies_adapters = True``: it applies the LoRA adapters of
    :attr:`LoadSpec.adapters`. A model with adapters is refused (a 400) by a backend
    without it, rather than run without them. Such a backend may also have
    ``adapter_problem(changed: set[str], model: GGUFInfo) -> str | None``: why it cannot
    apply an adapter changing the tensors ``changed`` to those weights, which the core asks
    at create (a 400) and before each load.

    Optionally it has ``weights_problem(path: Path) -> str | None`` and
    ``projector_problem(path: Path) -> str | None``: why it would abort the process on
    these weights or this multimodal projector (values of their headers it cannot take);
    the core asks at create (a 400). ``load`` checks the same itself: such weights are
    refused, such a projector left out (the model reads text).
    """

    #: unique name, e.g. ``"llamacpp"``
    name: str

    def supports(self, model_format: str) -> bool:
        """Whether this backend can load models of this format (``"gguf"``, ...)."""
        ...

    def load(self, spec: LoadSpec) -> Engine:
        """Load a model; raise :class:`~power_core.errors.InvalidModelFile` when the file
        is at fault, :class:`~power_core.errors.ModelLoadFailed` on other failures."""
        ...


@runtime_checkable
class Quantizer(Protocol):
    """A backend that can also quantize model files (``create --quantize``)."""

    name: str

    def supports(self, model_format: str) -> bool:
        """Whether this backend can read models of this format."""
        ...

    def quantize(self, spec: QuantizeSpec) -> None:
        """Write ``spec.source`` quantized to ``spec.file_type`` at ``spec.destination``.

        Blocking: the core calls it on a native thread of its own and may call it for
        several models at once. Raises :class:`~power_core.errors.QuantizeFailed` when the
        file cannot be quantized; the core removes what was written.
        """
        ...
