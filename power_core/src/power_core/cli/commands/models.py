"""The model-management commands, for the application to register."""

from __future__ import annotations

from power_core.cli.commands.copy import CopyCommand
from power_core.cli.commands.create import CreateCommand
from power_core.cli.commands.delete import DeleteCommand
from power_core.cli.commands.list import ListModelsCommand
from power_core.cli.commands.pull import PullCommand
from power_core.cli.commands.push import PushCommand
from power_core.cli.commands.show import ShowCommand

MODEL_COMMANDS = (
    PullCommand,
    PushCommand,
    CreateCommand,
    ListModelsCommand,
    ShowCommand,
    DeleteCommand,
    CopyCommand,
)

__all__ = ["MODEL_COMMANDS"]
