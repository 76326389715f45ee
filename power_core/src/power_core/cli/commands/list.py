"""``a3s-power list`` (``ls``): the models in the store, as Ollama prints them."""

from __future__ import annotations

from typing import ClassVar

from power_core.cli.base import PowerCommand
from power_core.cli.format import models_table


class ListModelsCommand(PowerCommand):
    name = "list"
    aliases: ClassVar[list[str]] = ["ls"]
    description = "List the models in the store."

    def handle(self) -> int:
        for line in models_table(self.library.list_models()):
            self.line(line)
        return 0
