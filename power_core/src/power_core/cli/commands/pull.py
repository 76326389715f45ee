"""``a3s-power pull URL``: download a GGUF model into the store."""

from __future__ import annotations

from typing import ClassVar

from cleo.helpers import argument, option
from cleo.io.inputs.argument import Argument
from cleo.io.inputs.option import Option

from power_core.cli.base import PowerCommand
from power_core.cli.commands.progress import ProgressPrinter


class PullCommand(PowerCommand):
    name = "pull"
    description = "Download a GGUF model from an http(s) URL (resumes interrupted downloads)."
    arguments: ClassVar[list[Argument]] = [
        argument("url", description="http(s) URL of a GGUF file")
    ]
    options: ClassVar[list[Option]] = [
        option("name", None, "Store it under this name (default: from the file name)", flag=False),
        option("digest", None, "Expected sha256 digest of the file (sha256:<hex>)", flag=False),
    ]

    def handle(self) -> int:
        printer = ProgressPrinter(self.io)
        try:
            name = self.library.pull(
                self.argument("url"),
                name=self.option("name"),
                expected_digest=self.option("digest"),
                progress=printer,
            )
        finally:
            printer.finish()
        self.line(f"pulled {name}")
        return 0
