"""From a :class:`GenerationRequest` to the engine's :class:`CompletionJob`.

Modelfile parameters fill what the client left unset, the chat template (Jinja, or Ollama's
Go syntax) renders the messages (the oldest turns dropped when they do not fit, see
:mod:`power_core.chat.fitting`),
a prompt too long for the context loses its middle, tool choice and response format become
output constraints, and a context that fills up shifts or ends the output.
"""

from __future__ import annotations

import logging
from dataclasses import fields, replace
from typing import Any

from power_core.chat.fitting import (
    fits_by_size,
    fitted_prompt,
    kept_count,
    kept_ends,
    reply_room,
    surely_too_long,
)
from power_core.chat.go_template.chat_template import GoChatTemplate
from power_core.chat.go_template.ollama_data import ThinkValues
from power_core.chat.images import prompt_token_count, tagged_images, tagged_prompt
from power_core.chat.messages import merge_system, prepend_history
from power_core.chat.output import THINK_CLOSE, THINK_OPEN, opens_thinking
from power_core.chat.sandbox import TemplateError
from power_core.chat.template import CHATML_TEMPLATE, ChatTemplate, render_prompt
from power_core.chat.template_syntax import is_go_template
from power_core.chat.tools import answer_or_call_schema, call_blocks, forced_tool_call_schema
from power_core.engine import CallBlocks, CompletionJob, Engine, FreeSpan
from power_core.errors import InvalidRequest, UnsupportedFeature
from power_core.models import ResolvedModel
from power_core.special_tokens import special_tokens_of
from power_core.types import ChatMessage, GenerationRequest, SamplingOptions

log = logging.getLogger(__name__)

_SAMPLING_FIELDS = {f.name: f for f in fields(SamplingOptions)}
_FLOAT_OPTIONS = {
    "temperature",
    "top_p",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
}
_INT_OPTIONS = {"top_k", "repeat_last_n", "seed"}


def sampling_options(model: ResolvedModel, requested: dict[str, Any]) -> SamplingOptions:
    """Defaults, overridden by the model's Modelfile parameters, overridden by the request."""
    values: dict[str, Any] = {}
    for source, where in ((model.parameters, "model parameter"), (requested, "option")):
        for key, value in source.items():
            if key not in _SAMPLING_FIELDS or value is None:
                continue
            values[key] = _checked_option(key, value, where)
    return replace(SamplingOptions(), **values)


def _checked_option(key: str, value: Any, where: str) -> Any:
    if key in _FLOAT_OPTIONS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequest(f"{where} '{key}' must be a number", param=key)
        return float(value)
    if key in _INT_OPTIONS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(f"{where} '{key}' must be an integer", param=key)
        return value
    if key == "logit_bias":
        if not isinstance(value, dict):
            raise InvalidRequest(f"{where} 'logit_bias' must map token ids to numbers", param=key)
        try:
            return {int(k): float(v) for k, v in value.items()}
        except (TypeError, ValueError):
            raise InvalidRequest(
                f"{where} 'logit_bias' must map token ids to numbers", param=key
            ) from None
    return value


def _stop_strings(model: ResolvedModel, request: GenerationRequest) -> list[str]:
    if request.stop:
        return list(request.stop)
    stop = model.parameters.get("stop", [])
    return [stop] if isinstance(stop, str) else list(stop)


def _max_tokens(model: ResolvedModel, request: GenerationRequest) -> int | None:
    if request.max_tokens is not None:
        return request.max_tokens
    value = model.parameters.get("num_predict")
    return int(value) if isinstance(value, int | float) and value > 0 else None


#: the first tokens a context shift keeps when neither request nor model says (Ollama's)
DEFAULT_SHIFT_KEEP = 4


def _keep_tokens(model: ResolvedModel, request: GenerationRequest) -> int:
    """The first tokens a context shift or a cut prompt keeps: the request's ``num_keep``,
    else the model's, else Ollama's default."""
    if request.keep_tokens is not None:
        return request.keep_tokens
    value = model.parameters.get("num_keep")
    return int(value) if isinstance(value, int | float) else DEFAULT_SHIFT_KEEP


def _shift_keep(model: ResolvedModel, request: GenerationRequest) -> int | None:
    fills_context = request.max_tokens is None and model.parameters.get("num_predict") == -2
    if not request.shift_context or fills_context:  # a Modelfile's -2 is its own limit
        return None
    return _keep_tokens(model, request)


def chat_template_for(
    model: ResolvedModel,
    override: str | None,
    special_tokens: tuple[str, str],
    think: ThinkValues | None = None,
) -> ChatTemplate | GoChatTemplate:
    """The request's template, else the Modelfile's (or the registry's template layer),
    else the GGUF's, else ChatML. A Jinja template prints ``special_tokens`` as
    ``bos_token`` and ``eos_token``; a Go template (Ollama's) runs as Ollama runs it, with
    ``think`` as ``.Think`` and ``.ThinkLevel``. A stored Go template this server cannot
    run gives way to the GGUF's (``create`` warned about it); a request's is refused,
    naming what cannot run."""
    bos, eos = special_tokens
    for source, from_request in ((override, True), (model.template, False)):
        if not source:
            continue
        if not is_go_template(source):
            return ChatTemplate(source, bos_token=bos, eos_token=eos)
        try:
            return GoChatTemplate(source, think=think)
        except TemplateError as exc:
            if from_request:
                raise TemplateError(exc.message, param="template") from None
            log.debug("model %s: %s; using the GGUF's chat template", model.name, exc.message)
    gguf = model.metadata.get("tokenizer.chat_template")
    if isinstance(gguf, str) and gguf and not is_go_template(gguf):
        return ChatTemplate(gguf, bos_token=bos, eos_token=eos)
    return ChatTemplate(CHATML_TEMPLATE, bos_token=bos, eos_token=eos)


def _think_values(request: GenerationRequest) -> ThinkValues:
    return ThinkValues(request.think, request.think_level)


def conversation(model: ResolvedModel, request: GenerationRequest) -> list[ChatMessage]:
    """The messages to render: Modelfile history and system applied."""
    if request.messages is not None:
        messages = list(request.messages)
    else:
        messages = [ChatMessage(role="user", content=request.prompt or "")]
    messages = prepend_history(messages, model.messages)
    if request.system:  # the request's own system prompt replaces the conversation's
        return merge_system(messages, request.system, replace=True)
    return merge_system(messages, model.system)


def build_job(model: ResolvedModel, engine: Engine, request: GenerationRequest) -> CompletionJob:
    """Turn a request into the engine's job: prompt text or tokens plus constraints."""
    job = _job_for(model, engine, request)
    # the reasoning a format or a forced tool call leaves alone: a model that thinks,
    # asked with ``think`` set, has it told apart from its answer, and only the answer is
    # to be JSON (Ollama too lets a model reason before it applies the format)
    if job.json_mode and request.think is not None:
        job.free_span = _thinking_span(model, engine, request, job)
    job.call_blocks = _call_blocks(model, engine, request, job)
    return job


#: the last tokens of a token prompt read back to tell whether it opens ``<think>``
_TAIL_TOKENS = 16


def prompt_opens_thinking(engine: Engine, prompt: str | list[int]) -> bool:
    """Whether a job's prompt ends inside an opened ``<think>`` block (the output then
    starts with reasoning); a token prompt is read by its last tokens."""
    tail = prompt if isinstance(prompt, str) else engine.detokenize(prompt[-_TAIL_TOKENS:])
    return opens_thinking(tail)


def _thinking_span(
    model: ResolvedModel, engine: Engine, request: GenerationRequest, job: CompletionJob
) -> FreeSpan | None:
    """The span of output that holds a thinking model's reasoning (``None`` for a model
    that does not think), opened already when the prompt ends inside ``<think>``."""
    if not model.can_think(request.template):
        return None
    return FreeSpan(THINK_OPEN, THINK_CLOSE, opened=prompt_opens_thinking(engine, job.prompt))


def _call_blocks(
    model: ResolvedModel, engine: Engine, request: GenerationRequest, job: CompletionJob
) -> CallBlocks | None:
    """The calls a chat that leaves the choice to the model has it write under a grammar
    once it opens one: valid JSON, of a declared tool, its arguments as declared."""
    if job.json_mode or request.messages is None or request.tool_choice != "auto":
        return None
    if not request.tools:
        return None
    special = special_tokens_of(model, engine)
    template = chat_template_for(model, request.template, special, _think_values(request))
    reasoning = _thinking_span(model, engine, request, job)  # a call only mused on is none
    return call_blocks(template.source, request.tools, request.parallel_tool_calls, reasoning)


def _job_for(model: ResolvedModel, engine: Engine, request: GenerationRequest) -> CompletionJob:
    if request.n < 1:
        raise InvalidRequest("'n' must be at least 1", param="n")
    parse_tools = bool(request.tools) and request.tool_choice != "none"
    schema = None
    json_mode = False
    if parse_tools:
        schema = forced_tool_call_schema(
            request.tools, request.tool_choice, request.parallel_tool_calls
        )
    if schema is None and request.response_format is not None:
        json_mode = True
        schema = request.response_format.schema
        if parse_tools and request.format_or_call:  # a call, or the answer in the format
            schema = answer_or_call_schema(schema, request.tools, request.parallel_tool_calls)
    job = CompletionJob(
        prompt="",
        sampling=sampling_options(model, request.sampling),
        max_tokens=_max_tokens(model, request),
        stop=_stop_strings(model, request),
        json_mode=json_mode or schema is not None,
        json_schema=schema,
        logprobs=request.logprobs,
        n=request.n,
        # Ollama returns no context for a raw prompt (nor do OpenAI completions need one)
        return_context=request.prompt is not None and request.messages is None and not request.raw,
        shift_keep=_shift_keep(model, request),
    )
    special = special_tokens_of(model, engine)
    if request.suffix and not request.raw:
        # Ollama writes a fill-in-the-middle prompt with a template that names .Suffix
        template = chat_template_for(model, request.template, special, _think_values(request))
        if isinstance(template, GoChatTemplate) and template.uses_suffix:
            job.prompt = template.render_insert(request.prompt or "", request.suffix)
            job.add_bos = not (special[0] and job.prompt.startswith(special[0]))
            return job
    if request.suffix is not None:
        if not engine.info.supports_fim:
            raise UnsupportedFeature(
                f"model '{model.name}' does not support insert (suffix)", param="suffix"
            )
        job.prompt, job.suffix = request.prompt or "", request.suffix
        return job
    bos = special[0]
    fits_context = True
    if request.raw and request.messages is None:
        images = list(request.images)
        text = tagged_prompt(request.prompt or "", images)
    else:
        templated = _templated(model, engine, request, special, job.max_tokens, parse_tools)
        text, fits_context, images = templated
    job.add_bos = not (bos and text.startswith(bos))
    if images:
        _check_reads_images(model, engine)
        job.images = images
    if request.context and images:  # the engine finds the images' tags in text only
        job.prompt = engine.detokenize(list(request.context)) + text
    elif request.context:
        job.prompt = list(request.context) + engine.tokenize(text, add_bos=False)
    else:
        job.prompt = text
    chat = request.messages is not None
    # a prompt with images is never cut: a cut could split an image's tag (the engine
    # refuses one too long for the context)
    if request.fit_history and not (chat and fits_context) and not images:
        # a conversation whose last turn alone is too long (no older turn left to drop)
        # loses its middle too, as Ollama truncates any input; only what cannot fit at all
        # is cut there: fitting its turns already left the reply what room it could
        _fit_input(engine, job, _keep_tokens(model, request), reply_room_first=not chat)
    return job


def _check_reads_images(model: ResolvedModel, engine: Engine) -> None:
    if not engine.info.reads_images:
        reason = (
            "its projector could not be loaded (the server's log says why)"
            if model.projector
            else "its vision weights are in the model file itself (Ollama's own engine "
            "format), which the installed backend cannot run; use a model with a separate "
            "projector"
        )
        raise UnsupportedFeature(
            f"model '{model.name}' cannot read images here: {reason}", param="images"
        )


def _templated(
    model: ResolvedModel,
    engine: Engine,
    request: GenerationRequest,
    special: tuple[str, str],
    max_tokens: int | None,
    parse_tools: bool,
) -> tuple[str, bool, list[bytes]]:
    """The request's conversation rendered by the chat template, its oldest turns dropped
    when ``fit_history`` asks and it does not fit (see :mod:`power_core.chat.fitting`),
    whether it fits the context then (``True`` when not fitted), and the images its tags
    show (:mod:`power_core.chat.images`; a dropped turn's are not shown)."""
    template = chat_template_for(model, request.template, special, _think_values(request))
    tools = request.tools if parse_tools else None
    bos = special[0]

    def render(messages: list[ChatMessage]) -> str:
        return render_prompt(template, messages, tools)

    counted: dict[str, int] = {}  # fitting counts a prompt at most once, and so does this
    messages, images = tagged_images(conversation(model, request))

    def count_tokens(prompt: str) -> int:
        if prompt not in counted:
            add_bos = not (bos and prompt.startswith(bos))
            counted[prompt] = prompt_token_count(engine, prompt, images, add_bos=add_bos)
        return counted[prompt]

    if not (request.fit_history and request.messages is not None):
        return render(messages), True, images
    context = engine.info.context_length
    budget = context - reply_room(context, max_tokens)
    longest = getattr(engine, "longest_token_bytes", None)
    text = fitted_prompt(
        messages,
        render,
        count_tokens,
        budget=budget,
        limit=context - 1,
        by_size=not images,
        longest_token_bytes=longest,
    )
    fits = (not images and fits_by_size(text, context - 1)) or (
        not surely_too_long(text, context - 1, longest) and count_tokens(text) <= context - 1
    )
    return text, fits, images


def _fit_input(engine: Engine, job: CompletionJob, keep: int, *, reply_room_first: bool) -> None:
    """A prompt (with any ``context``) too long for the context keeps its first ``keep``
    tokens and its end, as Ollama truncates its input (a ``context`` that earlier output
    grew past the context by shifting comes back this long). A job that shifts is cut
    only beyond the context, as Ollama does; so is a chat's (``reply_room_first`` false),
    whose turns were fitted first; any other leaves the reply room."""
    context = engine.info.context_length
    if job.shift_keep is not None or not reply_room_first:
        budget = context - 1
    else:
        budget = context - reply_room(context, job.max_tokens)
    prompt = job.prompt
    if isinstance(prompt, str):
        if fits_by_size(prompt, budget):
            return
        prompt = engine.tokenize(prompt, add_bos=job.add_bos)
    if len(prompt) > budget:
        bos = engine.tokenize("", add_bos=True)  # [BOS] where the model starts with one
        job.prompt = kept_ends(prompt, kept_count(keep, prompt, bos[0] if bos else None), budget)
        log.info("prompt of %d tokens cut to %d to fit the context", len(prompt), budget)
