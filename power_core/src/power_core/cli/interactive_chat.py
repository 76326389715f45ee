"""The ``>>>`` chat of ``a3s-power run``: reading messages (multi-line with triple
quotes), the ``/`` commands Ollama's chat has, and streaming each answer."""

from __future__ import annotations

import contextlib
import io
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from cleo.io.outputs.output import Type as OutputType

from power_core.cli.answer_sources import ServerLost
from power_core.cli.chat_session import PARAMETERS, ChatSession, model_info, usage_lines
from power_core.cli.format import models_table
from power_core.cli.image_paths import starts_with_image
from power_core.errors import InvalidModelName, InvalidRequest, PowerError
from power_core.modelfile import format_parameter_value
from power_core.models import ResolvedModel
from power_core.types import THINK_LEVELS, ResponseFormat

if TYPE_CHECKING:
    from power_core.library import ModelLibrary

HELP = '''\
Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /list           List the models in the store
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
  /set think [level]     Show the model's reasoning apart (level: low, medium, high)
  /set nothink           Ask the model not to think (its reasoning is dropped)
  /set wordwrap          Wrap answers at words
  /set nowordwrap        Don't wrap answers
  /set history           Remember what you type in the history
  /set nohistory         Stop remembering it
  /set verbose           Show statistics after each answer
  /set quiet             Hide statistics
"""
SHOW_HELP = """\
Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
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


class InteractiveChat:
    """The ``>>>`` loop: reads messages and /commands, streams answers."""

    def __init__(self, session: ChatSession, history_path: Path) -> None:
        self.session = session
        self.history_path = history_path
        self.readline: ModuleType | None = None

    @property
    def model(self) -> ResolvedModel:
        return self.session.model

    @property
    def library(self) -> ModelLibrary:
        return self.session.services.library

    def say(self, text: str) -> None:
        self.session.write(text)

    def run(self) -> int:
        """Chat until /bye or Ctrl-D; returns the exit status."""
        if isinstance(sys.stdin, io.TextIOWrapper):
            # bytes that are not UTF-8 reach valid_text as surrogates, not as an exception
            # (a strict locale's default)
            sys.stdin.reconfigure(errors="surrogateescape")
        self._start_readline()
        self._show_saved_messages()
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
                    try:
                        if not self._command(message.strip()):
                            return 0
                    except PowerError as exc:  # a model removed meanwhile, the store refused
                        self.say(f"error: {exc.message}\n")
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
        except ServerLost:  # nothing left to chat with: the chat ends with the error
            raise
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
        elif name == "/load":
            self._load(words[1:])
        elif name == "/save":
            self._save(words[1:])
        elif name == "/list":
            self.say("".join(f"{row}\n" for row in models_table(self.library.list_models())))
        elif "vision" in self.model.capabilities and starts_with_image(line):
            self._ask(line)  # a message that starts with an image's path, as Ollama takes it
        else:
            self.say(f"Unknown command '{name}'. Type /? for help\n")
        return True

    def _load(self, words: list[str]) -> None:
        if len(words) != 1:
            self.say("Usage:\n  /load <modelname>\n")
            return
        self.say(f"Loading model '{words[0]}'\n")
        try:
            self.session.switch_to(words[0])
        except PowerError as exc:
            self.say(f"error: {exc.message}\n")
            return
        self._show_saved_messages()

    def _show_saved_messages(self) -> None:
        """The conversation a model was saved with, as it was typed and answered."""
        for message in self.model.messages:
            if message.role == "user":
                self.say(f">>> {message.content}\n")
            elif message.role == "assistant":
                self.say(f"{message.content}\n\n")

    def _save(self, words: list[str]) -> None:
        if len(words) != 1:
            self.say("Usage:\n  /save <modelname>\n")
            return
        try:
            self.session.save_as(words[0])
        except InvalidModelName:
            self.say(f"error: The model name '{words[0]}' is invalid\n")
            return
        except PowerError as exc:
            self.say(f"error: {exc.message}\n")
            return
        self.say(f"Created new model '{words[0]}'\n")

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
            if not text:  # as Ollama: nothing to set (the model's own system message stays)
                self.say('Usage:\n  /set system <message>  or  /set system """<message>"""\n')
                return
            options.system = text
            self.say("Set system message.\n")
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
        elif what == "think":
            level = argument_text.strip().lower() or None
            if level is not None and level not in THINK_LEVELS:
                self.say(f"Invalid think level '{level}': use {', '.join(THINK_LEVELS)}\n")
                return
            options.think = options.think_asked = True
            options.think_level = level
            self.say(f"Set 'think' mode to '{level}'.\n" if level else "Set 'think' mode.\n")
        elif what == "nothink":
            options.think, options.think_asked, options.think_level = False, True, None
            self.say("Set 'nothink' mode.\n")
        elif what in ("wordwrap", "nowordwrap"):
            options.word_wrap = what == "wordwrap"
            self.say(f"Set '{what}' mode.\n")
        elif what in ("history", "nohistory"):
            if self.readline is not None:
                self.readline.set_auto_history(what == "history")
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
        elif what == "modelfile":
            self.say(self.library.describe(model.name).modelfile.rstrip("\n") + "\n")
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
                        # as a Modelfile and `show --parameters` write it: 0, not 0.0
                        out.append(f"{name:<16}{format_parameter_value(item)}")
        return "\n".join(out) + "\n"


def valid_text(text: str) -> str:
    """``text`` with the bytes that were not UTF-8 (kept by Python as lone surrogates, in
    arguments and terminal input) read as U+FFFD, as a server reads them in a request."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")
