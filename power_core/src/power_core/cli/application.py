"""The ``a3s-power`` console application: core commands load lazily, plugin commands join."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from typing import Any, ClassVar

from cleo.application import Application
from cleo.commands.command import Command
from cleo.commands.completions_command import CompletionsCommand
from cleo.commands.help_command import HelpCommand
from cleo.commands.list_command import ListCommand
from cleo.exceptions import CleoCommandNotFoundError
from cleo.io.inputs.argument import Argument
from cleo.io.inputs.argv_input import ArgvInput
from cleo.io.inputs.definition import Definition
from cleo.io.inputs.input import Input
from cleo.io.inputs.option import Option
from cleo.io.io import IO
from cleo.io.outputs.output import Output
from cleo.loaders.command_loader import CommandLoader

from power_core import __version__

#: command name -> "module:ClassName"; modules are imported only when the command runs
CORE_COMMANDS: dict[str, str] = {
    "pull": "power_core.cli.commands.pull:PullCommand",
    "push": "power_core.cli.commands.push:PushCommand",
    "create": "power_core.cli.commands.create:CreateCommand",
    "list": "power_core.cli.commands.list:ListModelsCommand",
    "show": "power_core.cli.commands.show:ShowCommand",
    "delete": "power_core.cli.commands.delete:DeleteCommand",
    "cp": "power_core.cli.commands.copy:CopyCommand",
    "run": "power_core.cli.commands.run:RunCommand",
    "serve": "power_core.cli.commands.serve:ServeCommand",
    "ps": "power_core.cli.commands.ps:PsCommand",
    "stop": "power_core.cli.commands.stop:StopCommand",
    "plugins": "power_core.cli.commands.plugins:PluginsCommand",
    "version": "power_core.cli.commands.version:VersionCommand",
    "config": "power_core.cli.commands.config:ConfigCommand",
    "key": "power_core.cli.commands.key:KeyCommand",
}

#: Ollama's short names; each command class also declares its aliases for cleo
COMMAND_ALIASES: dict[str, str] = {"ls": "list", "rm": "delete", "start": "serve"}


def _import_command(target: str) -> Command:
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)()


class PowerCommandLoader(CommandLoader):
    """Core commands by import path; plugin commands discovered only when asked for."""

    def __init__(self, core: dict[str, str]) -> None:
        self._core = core
        self._plugin_commands: dict[str, Callable[[], Command]] | None = None

    def _plugins(self) -> dict[str, Callable[[], Command]]:
        if self._plugin_commands is None:
            from power_core.plugins import get_registry

            self._plugin_commands = {
                name: cls
                for name, cls in get_registry().commands().items()
                if name not in self._core
            }
        return self._plugin_commands

    @property
    def names(self) -> list[str]:
        return [*self._core, *self._plugins()]

    def has(self, name: str) -> bool:
        name = COMMAND_ALIASES.get(name, name)
        return name in self._core or name in self._plugins()

    def get(self, name: str) -> Command:
        name = COMMAND_ALIASES.get(name, name)
        if name in self._core:
            return _import_command(self._core[name])
        if name in self._plugins():
            return self._plugins()[name]()
        raise CleoCommandNotFoundError(name)


class CommandsCommand(ListCommand):
    """cleo's command listing, renamed so that ``list`` can list models as Ollama does."""

    name = "commands"
    description = "Lists the available commands."


HELP_OPTION = "Display help for the given command; without one, list the commands."


class PowerHelpCommand(HelpCommand):
    """cleo's ``help``; with no command to explain it lists the commands, as ``ollama help``
    does (cleo's own explains ``help`` itself)."""

    arguments: ClassVar[list[Argument]] = [
        Argument("command_name", required=False, description="The command name")
    ]

    def handle(self) -> int:
        if self._command is None and not self.argument("command_name"):
            return self.call("commands")
        return super().handle()


#: options whose value may be left out, as Ollama's ``--think`` (``--think``, ``--think=high``):
#: alone they mean this value, and never take the next word (a prompt) as theirs
OPTIONAL_VALUES = {"think": "true"}


#: a negative number or duration (``-1``, ``-5m``), which no option's name starts with
_NEGATIVE = re.compile(r"-\d")


class PowerArgvInput(ArgvInput):
    """cleo's command-line parsing, with :data:`OPTIONAL_VALUES`, and an option's value
    that is a negative number given as the next word (``--keepalive -1``), which Go's flag
    package, and so Ollama's CLI, takes as the value."""

    def _add_long_option(self, name: str, value: Any) -> None:
        known = self._definition.has_option(name)
        if value is None and name in OPTIONAL_VALUES and known:
            value = OPTIONAL_VALUES[name]
        elif value is None and known and self._negative_value_follows(name):
            value = self._parsed.pop(0)
        super()._add_long_option(name, value)

    def _negative_value_follows(self, name: str) -> bool:
        option = self._definition.option(name)
        return (
            option.requires_value()
            and bool(self._parsed)
            and bool(_NEGATIVE.match(self._parsed[0]))
        )


class PowerApplication(Application):
    """``a3s-power``: with no arguments, ``help``, ``--help`` or ``-h`` it shows the command
    list."""

    def __init__(self) -> None:
        super().__init__("a3s-power", __version__)
        self._default_command = "commands"
        self.set_command_loader(PowerCommandLoader(CORE_COMMANDS))

    def create_io(
        self,
        input: Input | None = None,
        output: Output | None = None,
        error_output: Output | None = None,
    ) -> IO:
        if input is None:
            input = PowerArgvInput()
            input.set_stream(sys.stdin)
        return super().create_io(input, output, error_output)

    @property
    def default_commands(self) -> list[Command]:
        return [PowerHelpCommand(), CommandsCommand(), CompletionsCommand()]

    @property
    def _default_definition(self) -> Definition:
        # cleo's text says --help alone explains the default command; here it lists them all
        definition = super()._default_definition
        definition.set_options([_power_option(option) for option in definition.options])
        return definition

    def _configure_io(self, io: IO) -> None:
        # cleo reads -q as --quiet wherever it stands; here it is create's --quantize, as in
        # Ollama: cleo's own rules (SHELL_VERBOSITY, -v, interactivity) run with -q hidden
        # from their one check for it, and only --quiet silences
        probe = io.input.has_parameter_option

        def without_short_quiet(values: str | list[str], only_params: bool = False) -> bool:
            names = [values] if isinstance(values, str) else values
            return probe([name for name in names if name != "-q"], only_params)

        io.input.has_parameter_option = without_short_quiet  # type: ignore[method-assign]
        try:
            super()._configure_io(io)
        finally:
            del io.input.has_parameter_option

    def _run(self, io: IO) -> int:
        # cleo answers a --help without a command with the help of the default command
        # (the listing's options); a new user asking for help wants the commands
        if io.input.has_parameter_option(["--help", "-h"], True) and not _names_a_command(io):
            io.set_input(ArgvInput(["a3s-power", "help"]))
        return super()._run(io)


def _power_option(option: Option) -> Option:
    """cleo's global ``option`` as ``a3s-power`` has it: ``--help`` lists the commands, and
    ``-q`` is left to ``create --quantize`` as in Ollama (``--quiet`` keeps its name)."""
    if option.name == "help":
        return Option("--help", "-h", flag=True, description=HELP_OPTION)
    if option.name == "quiet":
        return Option("--quiet", flag=True, description=option.description)
    return option


def _names_a_command(io: IO) -> bool:
    """Whether the command line names a command (``run --help``), not only options."""
    return isinstance(io.input, ArgvInput) and io.input.first_argument is not None


def create_application() -> PowerApplication:
    """A fresh console application (tests drive it through cleo's ApplicationTester)."""
    return PowerApplication()


def main() -> int:
    """Console-script entry point."""
    return create_application().run()


if __name__ == "__main__":
    sys.exit(main())
