"""Request, event and result types shared by every API surface and every backend.

API plugins translate their wire formats into these and back; backends consume
:class:`CompletionJob` and produce :data:`EngineEvent` values. Neither side sees the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length", "tool_calls", "cancelled", "error"]
Role = Literal["system", "developer", "user", "assistant", "tool"]
#: how hard a model may be asked to think (:attr:`GenerationRequest.think_level`)
THINK_LEVELS = ("low", "medium", "high")


@dataclass
class SamplingOptions:
    """How the next token is chosen. ``temperature == 0`` means greedy."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    #: token id -> bias added to its logit (-100 bans, +100 forces)
    logit_bias: dict[int, float] = field(default_factory=dict)
    #: ``None`` draws a random seed per request
    seed: int | None = None


@dataclass(frozen=True)
class LoadOptions:
    """Options that shape a loaded model; a change of any of them reloads it."""

    num_ctx: int = 4096
    num_batch: int = 512
    num_thread: int | None = None
    #: use fewer of the ``num_thread`` threads while other processes keep cores busy
    adapt_threads: bool = True
    use_mmap: bool = True
    #: keep the weights in RAM (``mlock``): never paged out, even under memory pressure
    use_mlock: bool = False
    #: layers offloaded to the GPUs (Ollama's option): negative for as many as fit, 0 for
    #: none; a backend without GPUs ignores it
    num_gpu: int = -1
    #: the one GPU, counted from 0, that holds every offloaded layer; ``None`` spreads them
    #: over every GPU (llama.cpp reads ``main_gpu`` only when a model is on one GPU)
    main_gpu: int | None = None
    flash_attention: bool = False
    #: "f16", "q8_0" or "q4_0"; quantized types apply only with flash attention
    kv_cache_type: str = "f16"
    num_parallel: int = 4
    #: jobs that may wait for a free sequence; beyond them ``submit`` raises ``ServerBusy``
    max_queue: int = 512


@dataclass
class ToolCall:
    """A structured call of one tool by the model; ``arguments`` is a parsed JSON object."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass
class ToolSpec:
    """A function the model may call (OpenAI/Ollama ``tools`` entry)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass
class ChatMessage:
    """One message of a conversation, already normalised from the wire format."""

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    #: for ``role == "tool"``: which call this answers, and the tool's name
    tool_call_id: str | None = None
    tool_name: str | None = None
    thinking: str | None = None
    images: list[bytes] = field(default_factory=list)


#: ``"auto"``, ``"none"``, ``"required"`` or the name of one function that must be called
ToolChoice = str


@dataclass
class ResponseFormat:
    """Constrains output: JSON of any shape (``schema is None``) or JSON matching a schema."""

    schema: dict[str, Any] | None = None


@dataclass
class GenerationRequest:
    """What an API surface asks the core to generate.

    Exactly one of ``prompt`` and ``messages`` is set. A ``prompt`` is wrapped in the model's
    template (as a single user turn) unless ``raw`` is true.
    """

    model: str
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    suffix: str | None = None
    system: str | None = None
    #: a chat template (Jinja2, or Ollama's Go syntax) overriding the model's own
    template: str | None = None
    raw: bool = False
    #: images of a raw ``prompt``, which shows each with its tag (``[img-0]``, ...), else
    #: they go before it; a templated prompt's images travel on its messages
    images: list[bytes] = field(default_factory=list)
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    #: with tools the model may choose among (``tool_choice`` ``auto``) and a response
    #: format: ``True`` lets the output be a call or the formatted answer (OpenAI's
    #: reading); ``False`` keeps the format over all of it (Ollama's ``format``)
    format_or_call: bool = False
    #: sampling fields the client set explicitly; the rest come from the model's
    #: Modelfile parameters, then from :class:`SamplingOptions` defaults
    sampling: dict[str, Any] = field(default_factory=dict)
    #: load-time options the client set (num_ctx, num_batch, num_thread, use_mmap)
    load: dict[str, Any] = field(default_factory=dict)
    stop: list[str] = field(default_factory=list)
    #: ``None``: the model's ``num_predict``; negative: no limit
    max_tokens: int | None = None
    #: seconds to keep the model loaded afterwards; ``None`` uses the configured default,
    #: ``0`` unloads right after, negative keeps it loaded
    keep_alive: float | None = None
    #: ``None``: off; ``0``: log-probability of chosen tokens; ``k``: and the top ``k``
    logprobs: int | None = None
    n: int = 1
    #: ``None`` leaves reasoning inline; ``True`` separates it; ``False`` drops it
    think: bool | None = None
    #: how hard to think, where the request said (Ollama's ``think: "high"``, OpenAI's
    #: ``reasoning_effort``): ``low``, ``medium`` or ``high``; Go templates read it
    think_level: str | None = None
    #: previous token context (Ollama ``/api/generate`` ``context``), prepended to the prompt
    context: list[int] | None = None
    #: input too long for the context, with room for the reply, loses the oldest turns of
    #: its conversation, or the middle of its prompt tokens (Ollama's ``truncate``; see
    #: :mod:`power_core.chat.fitting`)
    fit_history: bool = False
    #: when prompt and output fill the context, drop the older half of what follows the
    #: first ``keep_tokens`` and go on (Ollama's ``shift``); else the output ends there
    shift_context: bool = False
    #: the first tokens a shift or a cut prompt keeps (at most half the context); ``None``:
    #: the model's ``num_keep`` parameter, else 4 (Ollama's default); negative: the prompt
    keep_tokens: int | None = None

    @property
    def forces_calls(self) -> bool:
        """Whether the answer must be tool calls: tools, and a ``tool_choice`` of
        ``required`` or a function's name (a grammar makes the calls)."""
        return bool(self.tools) and self.tool_choice not in ("auto", "none")


@dataclass
class EmbeddingRequest:
    """Texts (or token lists) to embed."""

    model: str
    inputs: list[str | list[int]]
    truncate: bool = True
    dimensions: int | None = None
    #: ``dimensions`` past the model's vector: ``False`` refuses them (a 400, as OpenAI),
    #: ``True`` gives the whole vector (as Ollama)
    whole_when_wider: bool = False
    #: unit-length vectors; ``False`` gives them at the length the model pooled them
    #: (where the backend reports it: :attr:`EmbeddingResult.norms`)
    normalize: bool = True
    keep_alive: float | None = None
    load: dict[str, Any] = field(default_factory=dict)
    #: asked now and then while the inputs are embedded: ``True`` stops the work (the
    #: client left), where the backend's ``embed`` takes a ``cancelled`` keyword
    cancelled: Callable[[], bool] | None = None


@dataclass
class TokenLogprob:
    """The log-probability of one emitted token and its strongest alternatives."""

    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float]] = field(default_factory=list)
    #: the bytes of each alternative in ``top``, where the backend gives them (a token may
    #: hold part of a character, which its text cannot show)
    top_bytes: list[list[int]] | None = None

    def alternatives(self) -> list[tuple[str, float, list[int]]]:
        """``top`` with each alternative's bytes (its text's, where the backend gave none)."""
        if self.top_bytes is not None:
            return [(t, p, b) for (t, p), b in zip(self.top, self.top_bytes, strict=True)]
        return [(token, logprob, list(token.encode("utf-8"))) for token, logprob in self.top]


# ----------------------------------------------------------------------------- engine events


@dataclass
class TextDelta:
    """New visible text for one choice."""

    choice: int
    text: str
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class ThinkingDelta:
    """New reasoning text (between ``<think>`` and ``</think>``) for one choice."""

    choice: int
    text: str


@dataclass
class ToolCallEvent:
    """A complete, parsed tool call for one choice (``index`` counts calls in that choice)."""

    choice: int
    index: int
    call: ToolCall


@dataclass
class PromptProgress:
    """Prompt processing advanced; surfaces use it for keep-alive frames."""

    processed: int
    total: int


@dataclass
class ChoiceDone:
    """One choice finished."""

    choice: int
    reason: FinishReason
    completion_tokens: int
    #: the stop string that ended the choice, when one did (a backend that cannot tell
    #: leaves it ``None``)
    stop_sequence: str | None = None


@dataclass
class Usage:
    """Token counts and timings of a finished generation (durations in nanoseconds)."""

    prompt_tokens: int = 0
    #: of the prompt tokens, how many the engine reused from an earlier job (prompt cache)
    cached_tokens: int = 0
    completion_tokens: int = 0
    #: of the completion tokens, how many were the model's reasoning (its separated
    #: ``<think>`` text, counted as the model tokenizes it)
    reasoning_tokens: int = 0
    load_ns: int = 0
    prompt_eval_ns: int = 0
    eval_ns: int = 0
    total_ns: int = 0
    #: prompt + generated token ids of choice 0 (Ollama's ``context``), when asked for
    context: list[int] | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class GenerationDone:
    """The last event of every stream."""

    usage: Usage
    #: the reason of choice 0, for surfaces that have only one choice
    reason: FinishReason


EngineEvent = TextDelta | PromptProgress | ChoiceDone | GenerationDone
GenerationEvent = (
    TextDelta | ThinkingDelta | ToolCallEvent | PromptProgress | ChoiceDone | GenerationDone
)


@dataclass
class EmbeddingResult:
    """Unit-length vectors, one per input, and how many tokens were read."""

    vectors: list[list[float]]
    prompt_tokens: int
    load_ns: int = 0
    total_ns: int = 0
    #: each vector's length before it was normalised, where the backend reports it (what
    #: Ollama's legacy ``/api/embeddings`` returns is the vector at that length)
    norms: list[float] | None = None
