"""``a3s-power list`` (``ls``): the models in the store, as Ollama prints them."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from power_core.cli.base import PowerCommand
from power_core.cli.format import human_ago, human_size


class ListModelsCommand(PowerCommand):
    name = "list"
    aliases: ClassVar[list[str]] = ["ls"]
    description = "List the models in the store."

    def handle(self) -> int:
        rows = [["NAME", "ID", "SIZE", "MODIFIED"]]
        now = datetime.now().astimezone()
        for model in self.library.list_models():
            rows.append(
                [
                    model.name,
                    model.digest[:12],
                    human_size(model.size),
                    human_ago(model.modified_at, now),
                ]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.line("    ".join(cells).rstrip())
        return 0
