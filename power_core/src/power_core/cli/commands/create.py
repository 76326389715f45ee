"""``a3s-power create NAME -f Modelfile``: build a model from a Modelfile."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from cleo.helpers import argument, option
from cleo.io.inputs.argument import Argument
from cleo.io.inputs.option import Option

from power_core.cli.base import PowerCommand
from power_core.cli.commands.progress import ProgressPrinter
from power_core.errors import InvalidRequest

#: a Modelfile is small text; refuse to read anything much larger
MAX_MODELFILE_BYTES = 16 << 20


class CreateCommand(PowerCommand):
    name = "create"
    description = "Create a model from a Modelfile (FROM a GGUF file or an existing model)."
    arguments: ClassVar[list[Argument]] = [argument("model", description="Name of the new model")]
    options: ClassVar[list[Option]] = [
        option(
            "file",
            "f",
            "Path to the Modelfile (default: ./Modelfile; without one, the model is made "
            "FROM the GGUF in the current folder, as `ollama create` makes it)",
            flag=False,
        ),
        option(
            "quantize",
            "q",
            "Quantize F16, BF16 or F32 weights to this level (q4_K_M, q4_K_S, q8_0)",
            flag=False,
        ),
    ]

    def handle(self) -> int:
        given = self.option("file")
        path = Path(given or "Modelfile").expanduser()
        # as Ollama, without a Modelfile the folder's GGUF (and projector) is the model
        text = "FROM .\n" if given is None and not path.exists() else self._read(path)
        printer = ProgressPrinter(self.io)
        try:
            self.library.create_from_modelfile(
                self.argument("model"),
                text,
                path.resolve().parent,
                progress=printer,
                quantize=self.option("quantize"),
            )
        finally:
            printer.finish()
        return 0

    @staticmethod
    def _read(path: Path) -> str:
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_MODELFILE_BYTES + 1)
        except OSError as exc:
            raise InvalidRequest(f"cannot read Modelfile {path}: {exc.strerror or exc}") from exc
        if len(raw) > MAX_MODELFILE_BYTES:
            raise InvalidRequest(f"{path} is too large to be a Modelfile")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(f"{path} is not UTF-8 text") from exc
