"""``a3s-power list`` (``ls``): the models in the store, as Ollama prints them."""

from __future__ import annotations

from typing import ClassVar

from cleo.helpers import argument
from cleo.io.inputs.argument import Argument

from power_core.cli.base import PowerCommand
from power_core.cli.format import models_table


class ListModelsCommand(PowerCommand):
    name = "list"
    aliases: ClassVar[list[str]] = ["ls"]
    description = "List the models in the store."
    arguments: ClassVar[list[Argument]] = [
        argument("prefix", "Only the models whose name starts with this.", optional=True)
    ]

    def handle(self) -> int:
        prefix = (self.argument("prefix") or "").lower()  # as `ollama ls`, in any case
        models = [m for m in self.library.list_models() if m.name.lower().startswith(prefix)]
        for line in models_table(models):
            self.line(line)
        return 0
