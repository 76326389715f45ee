"""``a3s-power push NAME``: upload a model to the registry its name points at."""

from __future__ import annotations

from typing import ClassVar

from cleo.helpers import argument
from cleo.io.inputs.argument import Argument
from cleo.io.inputs.option import Option

from power_core.cli.base import PowerCommand
from power_core.cli.commands.progress import ProgressPrinter
from power_core.cli.commands.pull import INSECURE_OPTION


class PushCommand(PowerCommand):
    name = "push"
    description = (
        "Upload a model to the registry its name points at (host/namespace/model:tag), "
        "sending only what the registry lacks."
    )
    help = (
        "Copy a model under the name it should have there first, e.g.\n"
        "  a3s-power cp smollm2:135m registry.example.com/me/smollm2:135m\n"
        "  a3s-power push registry.example.com/me/smollm2:135m\n"
        "Registries that need signing in (ollama.com) are not supported."
    )
    arguments: ClassVar[list[Argument]] = [
        argument("model", description="the model to push, named after its registry")
    ]
    options: ClassVar[list[Option]] = [INSECURE_OPTION]

    def handle(self) -> int:
        printer = ProgressPrinter(self.io)
        try:
            name = self.library.push(
                self.argument("model"), progress=printer, insecure=bool(self.option("insecure"))
            )
        finally:
            printer.finish()
        self.line(f"pushed {name}")
        return 0
