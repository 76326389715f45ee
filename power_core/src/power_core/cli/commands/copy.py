"""``a3s-power cp SOURCE DESTINATION``: copy a model under a new name."""

from __future__ import annotations

from typing import ClassVar

from cleo.helpers import argument
from cleo.io.inputs.argument import Argument

from power_core.cli.base import PowerCommand


class CopyCommand(PowerCommand):
    name = "cp"
    description = "Copy a model under a new name (no bytes are duplicated)."
    arguments: ClassVar[list[Argument]] = [
        argument("source", description="Existing model"),
        argument("destination", description="New name"),
    ]

    def handle(self) -> int:
        source = self.argument("source")
        destination = self.library.copy(source, self.argument("destination"))
        self.line(f"copied '{source}' to '{destination}'")
        return 0
