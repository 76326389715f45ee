"""``a3s-power show NAME``: a model's details, or one part of it (Modelfile, template, ...)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from cleo.formatters.formatter import Formatter
from cleo.helpers import argument, option
from cleo.io.inputs.argument import Argument
from cleo.io.inputs.option import Option

from power_core.cli.base import PowerCommand
from power_core.errors import InvalidRequest
from power_core.gguf import format_parameter_count
from power_core.models import ModelDescription

_PARTS = ("modelfile", "template", "parameters", "license", "system", "json")


def description_json(description: ModelDescription) -> dict[str, Any]:
    """The description in the shape of Ollama's ``/api/show`` response."""
    model = description.model
    details = model.details
    return {
        "license": model.license or "",
        "modelfile": description.modelfile,
        "parameters": description.parameters_text,
        "template": model.template or "",
        "system": model.system or "",
        "details": {
            "parent_model": details.parent_model,
            "format": details.format,
            "family": details.family,
            "families": details.families,
            "parameter_size": details.parameter_size,
            "quantization_level": details.quantization_level,
        },
        "model_info": description.model_info,
        **({"projector_info": description.projector_info} if description.projector_info else {}),
        "capabilities": model.capabilities,
        "modified_at": model.modified_at.isoformat(),
    }


class ShowCommand(PowerCommand):
    name = "show"
    description = "Show a model's details, Modelfile, template, parameters, license or system."
    arguments: ClassVar[list[Argument]] = [argument("model", description="Model name")]
    options: ClassVar[list[Option]] = [
        option("modelfile", None, "Print the Modelfile that recreates the model"),
        option("template", None, "Print the prompt template"),
        option("parameters", None, "Print the parameters"),
        option("license", None, "Print the license"),
        option("system", None, "Print the system prompt"),
        option("json", None, "Print everything as JSON (like /api/show)"),
    ]

    def handle(self) -> int:
        chosen = [part for part in _PARTS if self.option(part)]
        if len(chosen) > 1:
            raise InvalidRequest("choose only one of --" + ", --".join(chosen))
        # -v (cleo's global verbosity) with --json includes large arrays (the vocabulary)
        verbose = self.io.is_verbose() and chosen == ["json"]
        description = self.library.describe(self.argument("model"), verbose=verbose)
        model = description.model
        part = chosen[0] if chosen else None
        if part == "json":
            text = json.dumps(description_json(description), indent=2, default=str)
        elif part == "modelfile":
            text = description.modelfile
        elif part == "template":
            text = model.template or ""
        elif part == "parameters":
            text = description.parameters_text
        elif part == "license":
            text = model.license or ""
        elif part == "system":
            text = model.system or ""
        else:
            text = self._summary(description)
        self.io.write_line(Formatter.escape(text.rstrip("\n")))
        return 0

    @staticmethod
    def _summary(description: ModelDescription) -> str:
        model = description.model
        info = description.model_info
        arch = model.details.family or str(info.get("general.architecture", ""))
        rows = [
            ("architecture", arch),
            ("parameters", model.details.parameter_size),
            ("context length", str(info.get(f"{arch}.context_length", ""))),
            ("embedding length", str(info.get(f"{arch}.embedding_length", ""))),
            ("quantization", model.details.quantization_level),
        ]
        out = ["  Model"]
        out += [f"    {key:<20}{value}" for key, value in rows if value]
        if description.projector_info is not None:
            out += ["", "  Projector"]
            out += [f"    {key:<20}{value}" for key, value in _projector_rows(description) if value]
        out += ["", "  Capabilities"]
        out += [f"    {capability}" for capability in model.capabilities]
        if description.parameters_text:
            out += ["", "  Parameters"]
            out += [f"    {line}" for line in description.parameters_text.splitlines()]
        if model.system:
            out += ["", "  System"]
            out += [f"    {line}" for line in model.system.splitlines()[:5]]
        if model.license:
            out += ["", "  License"]
            out += [f"    {line}" for line in model.license.strip().splitlines()[:2]]
        return "\n".join(out) + "\n"


def _projector_rows(description: ModelDescription) -> list[tuple[str, str]]:
    """What ``ollama show`` prints of a projector: its architecture, size, and the widths
    of its vision tower and of the embeddings it gives the model."""
    info = description.projector_info or {}
    count = info.get("general.parameter_count")
    return [
        ("architecture", str(info.get("general.architecture", ""))),
        ("parameters", format_parameter_count(count) if isinstance(count, int) and count else ""),
        ("embedding length", str(info.get("clip.vision.embedding_length", ""))),
        ("dimensions", str(info.get("clip.vision.projection_dim", ""))),
    ]
