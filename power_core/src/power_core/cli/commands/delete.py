"""``a3s-power delete NAME...`` (``rm``): remove models and the blobs only they used."""

from __future__ import annotations

from typing import ClassVar

from cleo.formatters.formatter import Formatter
from cleo.helpers import argument
from cleo.io.inputs.argument import Argument

from power_core.cli.base import PowerCommand
from power_core.errors import PowerError


class DeleteCommand(PowerCommand):
    name = "delete"
    aliases: ClassVar[list[str]] = ["rm"]
    description = "Delete models (and the files no other model uses)."
    arguments: ClassVar[list[Argument]] = [
        argument("models", description="Models to delete", multiple=True)
    ]

    def handle(self) -> int:
        status = 0
        for name in self.argument("models"):
            try:
                self.library.delete(name)
            except PowerError as exc:
                # Keep going: one missing name should not keep the others on disk.
                self.line_error(f"<error>Error: {Formatter.escape(exc.message)}</error>")
                status = 1
                continue
            self.line(f"deleted '{name}'")
        return status
