"""``a3s-power run``: answer one prompt, or chat with a model; through a running server, as
``ollama run`` does, else in this process."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import ClassVar

from cleo.helpers import argument, option
from cleo.io.inputs.argument import Argument
from cleo.io.inputs.option import Option
from cleo.io.io import IO
from cleo.io.outputs.output import Type as OutputType

from power_core.cli.answer_sources import AnswerSource, InProcess, OnServer
from power_core.cli.base import PowerCommand
from power_core.cli.chat_session import (
    ChatSession,
    SessionOptions,
    usage_lines,
)
from power_core.cli.commands.progress import ProgressPrinter
from power_core.cli.interactive_chat import InteractiveChat, valid_text
from power_core.config import parse_duration
from power_core.errors import InvalidRequest, ModelNotFound
from power_core.models import ResolvedModel
from power_core.types import THINK_LEVELS, EmbeddingRequest, ResponseFormat


class RunCommand(PowerCommand):
    name = "run"
    description = "Run a model: answer a prompt, or chat with it interactively."
    help = (
        "With a prompt (--prompt, words after the model name, or text piped on stdin) the\n"
        "answer is streamed and the command exits. Without one, in a terminal, it starts a\n"
        "chat: type /? there for its commands. --verbose prints timings after each answer.\n"
        "An embedding model prints the prompt's vector as a JSON array instead.\n"
        "A server running at the configured address (a3s-power serve) answers, so the model\n"
        "stays loaded there for the next run; without one, the model runs in this process."
    )
    arguments: ClassVar[list[Argument]] = [
        argument("model", "The model to run."),
        argument("prompt", "Prompt words, joined by spaces.", optional=True, multiple=True),
    ]
    options: ClassVar[list[Option]] = [
        option("prompt", None, "A prompt to answer before exiting.", flag=False),
        option("format", None, "Response format: 'json' or a JSON schema.", flag=False),
        option("keepalive", None, "How long to keep the model loaded (e.g. 5m).", flag=False),
        option(
            "parameter",
            None,
            "Set a parameter: NAME=VALUE, e.g. temperature=0.",
            flag=False,
            multiple=True,
        ),
        option(
            "think",
            None,
            "Show the model's reasoning apart from its answer (the default for a model "
            "that thinks); --think=false asks it not to think, --think=low|medium|high how "
            "hard.",
            flag=False,
        ),
        option("hidethinking", None, "Hide the model's reasoning.", flag=True),
        option("nowordwrap", None, "Don't wrap answers at words in the terminal.", flag=True),
        option(
            "insecure",
            None,
            "Pull a missing model from a registry over plain HTTP or without checking its "
            "TLS certificate.",
            flag=True,
        ),
        option(
            "truncate",
            None,
            "Embedding models: cut an input longer than the context (true, the default) "
            "or refuse it (false).",
            flag=False,
        ),
        option(
            "dimensions",
            None,
            "Embedding models: keep this many dimensions of the vector (renormalised).",
            flag=False,
        ),
    ]

    def handle(self) -> int:
        options = self._session_options()
        model = self._model_pulled_if_missing(self.argument("model"))
        source = OnServer.find(self.settings) or InProcess(self.services)
        if model.embeds_only:
            return self._print_embedding(model, options, source)
        options.fit_to(model)
        # before the chat loads the model, as the API answers 400 before generating
        self.services.check_capabilities(options.request(model.name, []), model)
        prompt = self._one_shot_prompt()
        session = ChatSession(self.services, source, model, options, self.io)
        if prompt is None and not sys.stdout.isatty():
            # an output that is not a terminal never gets a chat, as `ollama run` decides
            # (its ">>> " prompts would go there, unseen); Ollama then only loads the model
            # in its server, and so does this on a server; in this one process that would
            # do nothing: say so
            if not isinstance(source, OnServer):
                raise InvalidRequest(
                    "no prompt, and the output is not a terminal: give one with --prompt, "
                    "as words after the model name, or on stdin"
                )
            source.load(model.name, options)
            return 0
        if prompt is None:
            source.load(model.name, options)
            return InteractiveChat(session, self.settings.home / "history").run()
        answer = session.ask(prompt)
        if answer.interrupted:
            return 130
        if options.verbose and answer.usage is not None:
            for line in usage_lines(answer.usage):
                self.io.write_error_line(line, type=OutputType.RAW)
        return 0

    def _print_embedding(
        self, model: ResolvedModel, options: SessionOptions, source: AnswerSource
    ) -> int:
        """As ``ollama run`` does with an embedding model: the prompt's vector, as JSON."""
        prompt = self._one_shot_prompt()
        if prompt is None:
            raise InvalidRequest(
                "embedding models require input text. Usage: "
                f'a3s-power run {self.argument("model")} "your text here"'
            )
        request = EmbeddingRequest(
            model=model.name,
            inputs=[prompt],
            truncate=_truncate(self.option("truncate")),
            dimensions=_dimensions(self.option("dimensions")),
            keep_alive=options.keep_alive,
            load=options.request(model.name, []).load,
        )
        vector = source.embed(model.name, options, request)
        self.io.write_line(json.dumps(vector, separators=(",", ":")), type=OutputType.RAW)
        return 0

    def _model_pulled_if_missing(self, name: str) -> ResolvedModel:
        """As ``ollama run`` does: a model not in the store is pulled by name first, with
        its progress on stderr (stdout carries only the answer)."""
        library = self.services.library
        try:
            return library.resolve(name)
        except ModelNotFound:
            errors = self.io.error_output
            with contextlib.ExitStack() as stack:
                printer = ProgressPrinter(IO(self.io.input, errors, errors))
                stack.callback(printer.finish)
                library.pull(name, progress=printer, insecure=bool(self.option("insecure")))
            return library.resolve(name)

    def _session_options(self) -> SessionOptions:
        options = SessionOptions(verbose=self.io.is_verbose())
        for item in self.option("parameter"):
            name, sep, value = item.partition("=")
            if not sep:
                raise InvalidRequest(f"--parameter must be NAME=VALUE, got '{item}'")
            try:
                # repeated --parameter stop=... flags add up
                options.set_parameter(name.strip(), [value], add=True)
            except InvalidRequest as exc:
                raise InvalidRequest(f"--parameter: {exc.message}") from None
        options.response_format = _response_format(self.option("format"))
        keepalive = self.option("keepalive")
        if keepalive is not None:
            try:
                options.keep_alive = parse_duration(keepalive)
            except ValueError as exc:
                raise InvalidRequest(f"--keepalive: {exc}") from None
        think = _think(self.option("think"))
        if think is not None:
            options.think, options.think_level = think
            options.think_asked = True
        if self.option("hidethinking") and options.think is None:
            options.think = True
        options.hide_thinking = bool(self.option("hidethinking"))
        options.word_wrap = not self.option("nowordwrap")
        return options

    def _one_shot_prompt(self) -> str | None:
        """The prompt to answer once, or ``None`` for an interactive chat."""
        parts: list[str] = []
        stdin = sys.stdin
        if stdin is None:  # closed (``<&-``): there is no chat to have
            if self.option("prompt") is None and not self.argument("prompt"):
                raise InvalidRequest(
                    "standard input is closed: give a prompt with --prompt or as words "
                    "after the model name"
                )
        elif not stdin.isatty():
            parts.append(stdin.buffer.read().decode("utf-8", errors="replace"))
        if self.option("prompt") is not None:
            parts.append(self.option("prompt"))
        parts.extend(self.argument("prompt"))
        if not parts:
            return None
        prompt = valid_text(" ".join(part for part in parts if part.strip()))
        if not prompt.strip():
            raise InvalidRequest(
                "the prompt is empty: give one with --prompt, as words after the model name, "
                "or on stdin"
            )
        return prompt


def _think(value: str | None) -> tuple[bool, str | None] | None:
    """``--think``'s value as Ollama reads it: whether to think, and how hard."""
    if value is None:
        return None
    word = value.lower()
    if word in ("true", ""):
        return True, None
    if word == "false":
        return False, None
    if word in THINK_LEVELS:
        return True, word
    raise InvalidRequest(
        f"invalid value for --think: '{value}' (true, false, {', '.join(THINK_LEVELS)})"
    )


def _truncate(value: str | None) -> bool:
    if value is None or value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise InvalidRequest(f"--truncate must be true or false, got '{value}'")


def _dimensions(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        dimensions = int(value)
    except ValueError:
        raise InvalidRequest(f"--dimensions must be a whole number, got '{value}'") from None
    return dimensions if dimensions > 0 else None


def _response_format(value: str | None) -> ResponseFormat | None:
    if value is None or value == "":
        return None
    if value == "json":
        return ResponseFormat()
    try:
        schema = json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        schema = None
    if not isinstance(schema, dict):
        raise InvalidRequest(f"--format must be 'json' or a JSON schema object, got '{value}'")
    return ResponseFormat(schema=schema)
