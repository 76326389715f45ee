"""``a3s-power run``: answer one prompt, or chat with a model, in this process (no server)."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import ClassVar

from cleo.helpers import argument, option
from cleo.io.inputs.argument import Argument
from cleo.io.inputs.option import Option
from cleo.io.io import IO
from cleo.io.outputs.output import Type as OutputType

from power_core.cli.base import PowerCommand
from power_core.cli.chat_session import (
    PARAMETERS,
    ChatSession,
    SessionOptions,
    model_info,
    usage_lines,
)
from power_core.cli.commands.progress import ProgressPrinter
from power_core.config import parse_duration
from power_core.errors import InvalidRequest, ModelNotFound, PowerError
from power_core.models import ResolvedModel
from power_core.types import ResponseFormat

HELP = '''\
Available Commands:
  /set            Set session variables
  /show           Show model information
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use """ to begin a multi-line message.
'''
SET_HELP = """\
Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set think             Separate the model's reasoning from its answer
  /set nothink           Drop the model's reasoning
  /set verbose           Show statistics after each answer
  /set quiet             Hide statistics
"""
SHOW_HELP = """\
Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""
SHORTCUTS_HELP = """\
Available keyboard shortcuts:
  Ctrl + c            Stop the answer being written; at the prompt, drop the line
  Ctrl + d            Exit (at an empty prompt)
  Ctrl + a, Ctrl + e  Move to the beginning, the end of the line
  Up, Down            Walk through earlier messages
"""
EXIT_HINT = "Use Ctrl + d or /bye to exit.\n"


class RunCommand(PowerCommand):
    name = "run"
    description = "Run a model: answer a prompt, or chat with it interactively."
    help = (
        "With a prompt (--prompt, words after the model name, or text piped on stdin) the\n"
        "answer is streamed and the command exits. Without one, in a terminal, it starts a\n"
        "chat: type /? there for its commands. --verbose prints timings after each answer."
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
        option("think", None, "Show the model's reasoning apart from its answer.", flag=True),
        option("hidethinking", None, "Hide the model's reasoning.", flag=True),
    ]

    def handle(self) -> int:
        options = self._session_options()
        model = self._model_pulled_if_missing(self.argument("model"))
        prompt = self._one_shot_prompt()
        session = ChatSession(self.services, model, options, self.io)
        if prompt is None:
            load = options.request(model.name, []).load
            self.services.load_model(model.name, options.keep_alive, load)
            return InteractiveChat(session, self.settings.home / "history").run()
        answer = session.ask(prompt)
        if answer.interrupted:
            return 130
        if options.verbose and answer.usage is not None:
            for line in usage_lines(answer.usage):
                self.io.write_error_line(line, type=OutputType.RAW)
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
                library.pull(name, progress=printer)
            return library.resolve(name)

    def _session_options(self) -> SessionOptions:
        options = SessionOptions(verbose=self.io.is_verbose())
        for item in self.option("parameter"):
            name, sep, value = item.partition("=")
            if not sep:
                raise InvalidRequest(f"--parameter must be NAME=VALUE, got '{item}'")
            try:
                options.set_parameter(name.strip(), [value])
            except InvalidRequest as exc:
                raise InvalidRequest(f"--parameter: {exc.message}") from None
        options.response_format = _response_format(self.option("format"))
        keepalive = self.option("keepalive")
        if keepalive is not None:
            try:
                options.keep_alive = parse_duration(keepalive)
            except ValueError as exc:
                raise InvalidRequest(f"--keepalive: {exc}") from None
        if self.option("think") or self.option("hidethinking"):
            options.think = True
        options.hide_thinking = bool(self.option("hidethinking"))
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


class InteractiveChat:
    """The ``>>>`` loop: reads messages and /commands, streams answers."""

    def __init__(self, session: ChatSession, history_path: Path) -> None:
        self.session = session
        self.history_path = history_path
        self.readline: ModuleType | None = None

    @property
    def model(self) -> ResolvedModel:
        return self.session.model

    def say(self, text: str) -> None:
        self.session.write(text)

    def run(self) -> int:
        """Chat until /bye or Ctrl-D; returns the exit status."""
        if isinstance(sys.stdin, io.TextIOWrapper):
            # bytes that are not UTF-8 reach valid_text as surrogates, not as an exception
            # (a strict locale's default)
            sys.stdin.reconfigure(errors="surrogateescape")
        self._start_readline()
        try:
            while True:
                try:
                    message = self._read_message()
                except EOFError:  # Ctrl-D
                    self.say("\n")
                    return 0
                except KeyboardInterrupt:
                    empty = self.readline is None or not self.readline.get_line_buffer()
                    self.say("\n" + (EXIT_HINT if empty else ""))
                    continue
                if not message.strip():
                    continue
                if message.lstrip().startswith("/"):
                    if not self._command(message.strip()):
                        return 0
                    continue
                self._ask(message)
        finally:
            self._save_history()

    # ------------------------------------------------------------------------- input
    def _read_message(self) -> str:
        """One line, or several between triple quotes (also ``/set system \"\"\"...\"\"\"``)."""
        line = valid_text(input(">>> "))
        start = line.find('"""')
        if start < 0:
            return line
        prefix, rest = line[:start], line[start + 3 :]
        if prefix.strip() not in ("", "/set system"):
            return line
        end = rest.find('"""')
        if end >= 0:
            return prefix + rest[:end]
        lines = [rest] if rest else []
        while True:
            try:
                more = valid_text(input("... "))
            except KeyboardInterrupt:  # abandon the message, back to ">>> " without a hint
                self.say("\n")
                return ""
            end = more.find('"""')
            if end >= 0:
                lines.append(more[:end])
                return prefix + "\n".join(lines)
            lines.append(more)

    def _start_readline(self) -> None:
        try:
            import readline
        except ImportError:  # Windows without pyreadline: plain input() still works
            return
        self.readline = readline
        readline.set_history_length(1000)
        with contextlib.suppress(OSError):  # no history yet
            readline.read_history_file(self.history_path)

    def _save_history(self) -> None:
        if self.readline is None:
            return
        try:
            self.history_path.parent.mkdir(parents=True, exist_ok=True)
            self.readline.write_history_file(self.history_path)
        except OSError as exc:
            self.session.io.write_error_line(f"could not save history: {exc}", type=OutputType.RAW)

    # ------------------------------------------------------------------------- turns
    def _ask(self, message: str) -> None:
        try:
            answer = self.session.ask(message)
        except PowerError as exc:  # the chat goes on; e.g. /clear after a context overflow
            self.session.io.write_error_line(f"Error: {exc.message}", type=OutputType.RAW)
            return
        if self.session.options.verbose and answer.usage is not None and not answer.interrupted:
            for line in usage_lines(answer.usage):
                self.session.io.write_error_line(line, type=OutputType.RAW)
        self.say("\n")

    # ------------------------------------------------------------------------- commands
    def _command(self, line: str) -> bool:
        """Run one /command; False when the chat should end."""
        words = line.split()
        name = words[0]
        if name in ("/bye", "/exit"):
            return False
        if name == "/clear":
            self.session.clear()
            self.say("Cleared session context\n")
        elif name in ("/?", "/help"):
            topic = words[1] if len(words) > 1 else ""
            helps = {"set": SET_HELP, "show": SHOW_HELP, "shortcuts": SHORTCUTS_HELP}
            self.say(helps.get(topic, HELP))
        elif name == "/set":
            self._set(line)
        elif name == "/show":
            self._show(words[1:])
        else:
            self.say(f"Unknown command '{name}'. Type /? for help\n")
        return True

    def _set(self, line: str) -> None:
        rest = line[len("/set") :].strip()
        what, _, argument_text = rest.partition(" ")
        options = self.session.options
        if what == "parameter":
            self._set_parameter(argument_text)
        elif what == "system":
            text = argument_text.strip()
            if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
                text = text[1:-1]
            options.system = text or None
            self.say("Set system message.\n" if text else "Cleared system message.\n")
        elif what in ("verbose", "quiet"):
            options.verbose = what == "verbose"
            self.say(f"Set '{what}' mode.\n")
        elif what == "format":
            if argument_text.strip() != "json":
                self.say("Invalid or missing format. For 'json' mode use '/set format json'\n")
                return
            options.response_format = ResponseFormat()
            self.say("Set format to 'json' mode.\n")
        elif what == "noformat":
            options.response_format = None
            self.say("Disabled format.\n")
        elif what in ("think", "nothink"):
            options.think = what == "think"
            self.say(f"Set '{what}' mode.\n")
        elif not what:
            self.say(SET_HELP)
        else:
            self.say(f"Unknown command '/set {what}'. Type /? for help\n")

    def _set_parameter(self, text: str) -> None:
        try:
            words = shlex.split(text)
        except ValueError:  # an unbalanced quote: take the words as typed
            words = text.split()
        if not words:
            self.say("Available Parameters:\n")
            for name, (kind, about) in PARAMETERS.items():
                shown = f"{name} <{kind}>"
                self.say(f"  /set parameter {shown:<26}{about}\n")
            return
        name, values = words[0], words[1:]
        try:
            value = self.session.options.set_parameter(name, values)
        except InvalidRequest as exc:
            self.say(f"Couldn't set parameter: {exc.message}\n")
            return
        shown = ", ".join(value) if isinstance(value, list) else " ".join(values)
        self.say(f"Set parameter '{name}' to '{shown}'\n")

    def _show(self, words: list[str]) -> None:
        what = words[0] if words else ""
        model = self.model
        if what == "info":
            self.say(model_info(model))
        elif what == "license":
            self.say((model.license or "No license was specified for this model.") + "\n")
        elif what == "system":
            system = self.session.options.system or model.system
            self.say((system or "No system message was specified for this model.") + "\n")
        elif what == "template":
            template = model.template or model.metadata.get("tokenizer.chat_template")
            self.say(f"{template}\n" if template else "No template was specified for this model.\n")
        elif what == "parameters":
            self.say(self._parameters_text())
        elif not what:
            self.say(SHOW_HELP)
        else:
            self.say(f"Unknown command '/show {what}'. Type /? for help\n")

    def _parameters_text(self) -> str:
        user = self.session.options.parameters
        model = self.model.parameters
        if not user and not model:
            return "No parameters were specified for this model.\n"
        out = []
        for title, values in (
            ("User defined parameters:", user),
            ("Model defined parameters:", model),
        ):
            if values:
                out.append(title)
                for name, value in values.items():
                    for item in value if isinstance(value, list) else [value]:
                        out.append(f"{name:<16}{item}")
        return "\n".join(out) + "\n"


def valid_text(text: str) -> str:
    """``text`` with the bytes that were not UTF-8 (kept by Python as lone surrogates, in
    arguments and terminal input) read as U+FFFD, as a server reads them in a request."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")
