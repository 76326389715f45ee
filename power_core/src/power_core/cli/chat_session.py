"""One conversation with a model: typed session options and streamed turns.

``a3s-power run`` uses it for both one-shot prompts and the interactive chat. The answers
come from an :class:`~power_core.cli.answer_sources.AnswerSource`: a running server, or
this process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cleo.io.io import IO
from cleo.io.outputs.output import Type as OutputType

from power_core.cli.image_paths import images_in
from power_core.cli.word_wrap import terminal_width, wrapped_writer
from power_core.errors import InvalidRequest, PowerError
from power_core.models import ResolvedModel
from power_core.types import (
    ChatMessage,
    GenerationDone,
    GenerationRequest,
    ResponseFormat,
    TextDelta,
    ThinkingDelta,
    Usage,
)

if TYPE_CHECKING:
    from power_core.cli.answer_sources import AnswerSource, AnswerStream
    from power_core.services import PowerServices

#: parameter name -> (value kind, what it does); the kinds are float, int and strings
PARAMETERS: dict[str, tuple[str, str]] = {
    "temperature": ("float", "randomness: 0 is greedy, higher is more creative"),
    "top_k": ("int", "sample only from the k most likely tokens (0: all)"),
    "top_p": ("float", "sample from the most likely tokens whose probabilities add up to p"),
    "min_p": ("float", "drop tokens less likely than p times the most likely one"),
    "typical_p": ("float", "locally typical sampling (1: off)"),
    "repeat_penalty": ("float", "penalise repeated tokens (1: off)"),
    "repeat_last_n": ("int", "how many recent tokens the repeat penalty looks at"),
    "presence_penalty": ("float", "penalise tokens that appeared at all"),
    "frequency_penalty": ("float", "penalise tokens by how often they appeared"),
    "seed": ("int", "random seed for repeatable answers (-1: random)"),
    "num_predict": ("int", "most tokens to generate (-1: until it stops, -2: fill the context)"),
    "num_keep": ("int", "first tokens kept when a full context shifts (-1: the whole prompt)"),
    "stop": ("strings", "stop generating at any of these strings"),
    "num_ctx": ("int", "context window in tokens (reloads the model)"),
    "num_batch": ("int", "prompt tokens processed per step (reloads the model)"),
    "num_thread": ("int", "CPU threads (reloads the model)"),
    "num_gpu": ("int", "layers offloaded to the GPUs (-1: as many as fit; reloads the model)"),
    "main_gpu": ("int", "the one GPU, from 0, that holds the model (reloads the model)"),
    "use_mmap": ("bool", "map the model file instead of reading it (reloads the model)"),
    "use_mlock": ("bool", "lock the model in RAM (reloads the model)"),
}
_UNIT_INTERVAL = {"top_p", "min_p", "typical_p"}
_NON_NEGATIVE = {"temperature", "repeat_penalty", "top_k", "main_gpu"}
_POSITIVE = {"num_ctx", "num_batch", "num_thread"}
_LOAD = {"num_ctx", "num_batch", "num_thread", "num_gpu", "main_gpu", "use_mmap", "use_mlock"}
#: how ``/set parameter`` reads a true or false, as Go's strconv.ParseBool (Ollama's)
_BOOLS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


def parse_parameter(name: str, values: list[str]) -> Any:
    """The typed value of ``/set parameter NAME VALUE...``; InvalidRequest says what is wrong."""
    spec = PARAMETERS.get(name)
    if spec is None:
        raise InvalidRequest(
            f"unknown parameter '{name}' (known: {', '.join(PARAMETERS)})", param=name
        )
    kind = spec[0]
    if not values:
        raise InvalidRequest(f"parameter '{name}' needs a value", param=name)
    if kind == "strings":
        return list(values)
    if len(values) != 1:
        raise InvalidRequest(f"parameter '{name}' takes one value", param=name)
    text = values[0]
    if kind == "bool":
        if text.lower() not in _BOOLS:
            raise InvalidRequest(f"'{name}' must be true or false, got '{text}'", param=name)
        return _BOOLS[text.lower()]
    value: int | float
    try:
        value = int(text) if kind == "int" else float(text)
    except ValueError:
        expected = "an integer" if kind == "int" else "a number"
        raise InvalidRequest(f"'{name}' must be {expected}, got '{text}'", param=name) from None
    if not math.isfinite(value):
        raise InvalidRequest(f"'{name}' must be a finite number, got '{text}'", param=name)
    if name in _UNIT_INTERVAL and not 0 <= value <= 1:
        raise InvalidRequest(f"'{name}' must be between 0 and 1, got '{text}'", param=name)
    if name in _NON_NEGATIVE and value < 0:
        raise InvalidRequest(f"'{name}' must not be negative, got '{text}'", param=name)
    if name in _POSITIVE and value < 1:
        raise InvalidRequest(f"'{name}' must be at least 1, got '{text}'", param=name)
    if name in {"num_predict", "repeat_last_n"} and value < -2:
        raise InvalidRequest(f"'{name}' must be -1 or more, got '{text}'", param=name)
    return value


@dataclass
class SessionOptions:
    """What ``run``'s flags and ``/set`` commands change; applied to every request."""

    parameters: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    response_format: ResponseFormat | None = None
    keep_alive: float | None = None
    #: ``None`` leaves reasoning inline, ``True`` separates it, ``False`` drops it; a model
    #: that thinks separates it unless told otherwise (see :meth:`fit_to`)
    think: bool | None = None
    #: ``think`` was asked for (``--think``, ``/set think``), not implied by ``--hidethinking``
    #: or by the model
    think_asked: bool = False
    #: how hard to think (``low``, ``medium``, ``high``), for the templates that read it
    think_level: str | None = None
    hide_thinking: bool = False
    verbose: bool = False
    #: wrap answers at words in a terminal, as ``ollama run`` does (``--nowordwrap``)
    word_wrap: bool = True

    def set_parameter(self, name: str, values: list[str], *, add: bool = False) -> Any:
        """Parse and store one parameter, replacing its value (with ``add``, ``stop``
        strings join those set before). Returns the stored value."""
        value = parse_parameter(name, values)
        if name == "stop" and add:
            value = [*self.parameters.get("stop", []), *value]
        self.parameters[name] = value
        return value

    def fit_to(self, model: ResolvedModel) -> None:
        """As ``ollama run`` decides: a model that thinks has its reasoning shown apart
        unless told otherwise; ``--hidethinking`` alone on one that cannot think has nothing
        to hide (nor does a think the model implied); a ``think`` asked for stays, for the
        model to refuse."""
        if self.think is None and model.can_think():
            self.think = True
        elif self.think and not self.think_asked and not model.can_think():
            self.think = None

    def request(self, model: str, messages: list[ChatMessage]) -> GenerationRequest:
        """A generation request for ``messages`` carrying every session option."""
        sampling: dict[str, Any] = {}
        load: dict[str, Any] = {}
        max_tokens: int | None = None
        stop: list[str] = []
        keep: int | None = None
        for name, value in self.parameters.items():
            if name == "stop":
                stop = list(value)
            elif name == "num_predict":  # 0 as Ollama reads it: no limit
                max_tokens = -1 if value <= 0 else value
            elif name == "num_keep":
                keep = value
            elif name in _LOAD:
                load[name] = value
            elif name == "seed":
                sampling["seed"] = value if value >= 0 else None
            else:
                sampling[name] = value
        return GenerationRequest(
            model=model,
            messages=messages,
            system=self.system,
            sampling=sampling,
            load=load,
            stop=stop,
            max_tokens=max_tokens,
            keep_alive=self.keep_alive,
            response_format=self.response_format,
            think=self.think,
            think_level=self.think_level if self.think else None,
            # a long chat goes on, as in `ollama run` (num_predict -2: until the context is full)
            fit_history=True,
            shift_context=self.parameters.get("num_predict") != -2,
            keep_tokens=keep,
        )


@dataclass
class Answer:
    """What one turn produced; ``interrupted`` when Ctrl-C stopped it."""

    text: str = ""
    thinking: str = ""
    usage: Usage | None = None
    interrupted: bool = False


class ChatSession:
    """A conversation: history, options, and streaming each answer to the terminal."""

    def __init__(
        self,
        services: PowerServices,
        source: AnswerSource,
        model: ResolvedModel,
        options: SessionOptions,
        io: IO,
    ) -> None:
        self.services = services
        self.source = source
        self.model = model
        self.options = options
        self.io = io
        self.messages: list[ChatMessage] = []

    def clear(self) -> None:
        """Forget the conversation (options and system message stay)."""
        self.messages.clear()

    def switch_to(self, name: str) -> ResolvedModel:
        """Go on with model ``name`` (loaded now), from a fresh conversation; the session's
        options stay. A model saved with messages brings them, as the server prepends
        them to every chat."""
        model = self.services.library.resolve(name)
        self.options.fit_to(model)
        # refused before the load, as `ollama run`'s /load refuses think on a model without it
        request = self.options.request(model.name, [])
        self.services.check_capabilities(request, model)
        self.source.load(model.name, self.options)
        self.model = model
        self.messages.clear()
        return model

    def save_as(self, name: str) -> str:
        """Store this session as model ``name``: the current model with the session's
        system message, parameters and conversation (after the model's own messages)."""
        messages = [*self.model.messages, *self.messages]
        return self.services.library.create(
            name,
            from_=self.model.name,
            system=self.options.system,
            parameters=dict(self.options.parameters) or None,
            messages=messages or None,
        )

    def write(self, text: str) -> None:
        """Write text as is (model output may contain ``<tags>``); cleo flushes each write."""
        self.io.write(text, type=OutputType.RAW)

    def ask(self, prompt: str) -> Answer:
        """Stream the model's answer to ``prompt``; keep the turn unless it was interrupted.
        For a model that reads images, image files the prompt names are sent with it.

        Ctrl-C while the answer streams cancels the generation and returns what arrived;
        the turn is then left out of the history so the next question starts clean.
        """
        images: list[bytes] = []
        if "vision" in self.model.capabilities:
            prompt, found = images_in(prompt)
            for name, data in found:
                self.io.write_error_line(f"Added image '{name}'", type=OutputType.RAW)
                images.append(data)
        question = ChatMessage(role="user", content=prompt, images=images)
        answer = Answer()
        stream: AnswerStream | None = None
        ended_with_newline = True
        try:
            stream = self.source.answer(self.model.name, self.options, [*self.messages, question])
            ended_with_newline = self._stream_into(stream, answer)
        except KeyboardInterrupt:
            if stream is not None:
                stream.cancel()  # frees the engine's sequence before the next question
            answer.interrupted = True
        except PowerError:  # the error's line starts a line of its own
            if answer.text or answer.thinking:
                self.write("\n")
            raise
        if not ended_with_newline or answer.interrupted:
            self.write("\n")
        if not answer.interrupted:
            self.messages.append(question)
            self.messages.append(
                ChatMessage(role="assistant", content=answer.text, thinking=answer.thinking or None)
            )
        return answer

    def _stream_into(self, stream: AnswerStream, answer: Answer) -> bool:
        """Write events as they come (wrapped at words in a terminal, unless the session
        says not to); True when the last thing written ended a line."""
        show_thinking = not self.options.hide_thinking
        columns = terminal_width() if self.options.word_wrap else None
        feed, finish = wrapped_writer(self.write, columns)
        thinking_open = False
        last = "\n"
        try:
            for event in stream:
                if isinstance(event, ThinkingDelta):
                    answer.thinking += event.text
                    if show_thinking and event.text:
                        if not thinking_open:
                            self.write("Thinking...\n")
                            thinking_open = True
                        feed(event.text)
                        last = event.text
                elif isinstance(event, TextDelta):
                    if thinking_open:
                        finish()
                        self.write("\n...done thinking.\n\n")
                        feed, finish = wrapped_writer(self.write, columns)  # a fresh line
                        thinking_open = False
                        last = "\n"
                    if event.text:
                        answer.text += event.text
                        feed(event.text)
                        last = event.text
                elif isinstance(event, GenerationDone):
                    answer.usage = event.usage
        finally:
            finish()  # the word still held, even when Ctrl-C stops the answer
        if thinking_open:
            self.write("\n...done thinking.\n")
            last = "\n"
        return last.endswith("\n")


def _duration(ns: int) -> str:
    """A duration the way Go prints one (``1.52s``, ``38.1ms``, ``412µs``)."""
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if ns >= scale:
            return f"{ns / scale:.6g}{unit}"
    return f"{ns}ns"


def _rate(tokens: int, ns: int) -> str:
    return f"{tokens / (ns / 1e9):.2f} tokens/s" if ns > 0 else "n/a"


def usage_lines(usage: Usage) -> list[str]:
    """``--verbose`` statistics of one answer, in Ollama's layout."""
    rows = [
        ("total duration", _duration(usage.total_ns)),
        ("load duration", _duration(usage.load_ns)),
        ("prompt eval count", f"{usage.prompt_tokens} token(s)"),
        ("prompt eval duration", _duration(usage.prompt_eval_ns)),
        ("prompt eval rate", _rate(usage.prompt_tokens, usage.prompt_eval_ns)),
        ("eval count", f"{usage.completion_tokens} token(s)"),
        ("eval duration", _duration(usage.eval_ns)),
        ("eval rate", _rate(usage.completion_tokens, usage.eval_ns)),
    ]
    return [f"{label + ':':<22}{value}" for label, value in rows]


def model_info(model: ResolvedModel) -> str:
    """``/show info``: architecture, size, quantization, context length, capabilities."""
    meta = model.metadata
    architecture = str(meta.get("general.architecture") or model.details.family or "")
    rows = [
        ("architecture", architecture),
        ("parameters", model.details.parameter_size),
        ("context length", meta.get(f"{architecture}.context_length")),
        ("embedding length", meta.get(f"{architecture}.embedding_length")),
        ("quantization", model.details.quantization_level),
    ]
    lines = ["  Model"]
    lines += [f"    {label:<20}{value}" for label, value in rows if value not in (None, "")]
    if model.capabilities:
        lines += ["", "  Capabilities"] + [f"    {c}" for c in model.capabilities]
    if model.parameters:
        lines += ["", "  Parameters"]
        for name, value in model.parameters.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"    {name:<20}{item}")
    if model.system:
        lines += ["", "  System", f"    {model.system.splitlines()[0]}"]
    if model.license:
        lines += ["", "  License", f"    {model.license.splitlines()[0]}"]
    return "\n".join(lines) + "\n\n"
