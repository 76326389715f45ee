"""``a3s-power pull NAME|URL``: download a model from a registry, or a GGUF file."""

from __future__ import annotations

from typing import ClassVar

from cleo.helpers import argument, option
from cleo.io.inputs.argument import Argument
from cleo.io.inputs.option import Option

from power_core.cli.base import PowerCommand
from power_core.cli.commands.progress import ProgressPrinter

#: ``--insecure``, as in Ollama's pull and push
INSECURE_OPTION = option(
    "insecure",
    None,
    "Allow plain HTTP to the registry and unverified TLS (development registries)",
    flag=True,
)


class PullCommand(PowerCommand):
    name = "pull"
    description = (
        "Download a model by name from a registry (default registry.ollama.ai) or a GGUF "
        "file from an http(s) URL; interrupted downloads resume."
    )
    arguments: ClassVar[list[Argument]] = [
        argument("model", description="a model name (smollm2:135m) or the http(s) URL of a GGUF")
    ]
    options: ClassVar[list[Option]] = [
        option(
            "name",
            None,
            "Store it under this name (default: the name pulled, or from the file name)",
            flag=False,
        ),
        option("digest", None, "Expected sha256 digest of the file (sha256:<hex>)", flag=False),
        INSECURE_OPTION,
    ]

    def handle(self) -> int:
        printer = ProgressPrinter(self.io)
        try:
            name = self.library.pull(
                self.argument("model"),
                name=self.option("name"),
                expected_digest=self.option("digest"),
                progress=printer,
                insecure=bool(self.option("insecure")),
            )
        finally:
            printer.finish()
        self.line(f"pulled {name}")
        return 0
