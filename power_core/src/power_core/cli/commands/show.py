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
        # -v (cleo's global verbosity), as `ollama show -v`: with --json the large arrays
        # (the vocabulary), without a part the metadata and tensors too
        verbose = self.io.is_verbose() and chosen in (["json"], [])
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
            text = self._summary(description, verbose)
        self.io.write_line(Formatter.escape(text.rstrip("\n")))
        return 0

    @staticmethod
    def _summary(description: ModelDescription, verbose: bool) -> str:
        """The sections ``ollama show`` prints, in its order."""
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
        out += ["", "  Capabilities"]
        out += [f"    {capability}" for capability in model.capabilities]
        if description.projector_info is not None:
            out += ["", "  Projector"]
            out += [f"    {key:<20}{value}" for key, value in _projector_rows(description) if value]
        if description.parameters_text:
            out += ["", "  Parameters"]
            out += [f"    {line}" for line in description.parameters_text.splitlines()]
        if verbose:
            out += ["", "  Metadata"]
            out += [f"    {key:<40}{_metadata_value(value)}" for key, value in sorted(info.items())]
            out += ["", "  Tensors"]
            out += [
                f"    {name:<40}{kind:<8}{list(shape)}" for name, kind, shape in description.tensors
            ]
        for title, text in (("System", model.system), ("License", model.license)):
            if text:
                out += ["", f"  {title}", *[f"    {line}" for line in _head(text, 2)]]
        return "\n".join(out) + "\n"


def _head(text: str, count: int) -> list[str]:
    """The first ``count`` lines of ``text`` that hold something, and ``...`` when there is
    more, as ``ollama show`` summarises a system message or a license."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[:count] + (["..."] if len(lines) > count else [])


def _metadata_value(value: Any) -> str:
    """A metadata value in a column, as ``ollama show -v`` prints one: a long array cut to
    what fits in about ten characters, and how many more it holds."""
    if not isinstance(value, list):
        return str(value).lower() if isinstance(value, bool) else str(value)
    shown: list[str] = []
    width = 1
    for item in value:
        added = len(str(item)) + (2 if shown else 0)
        if shown and width + added > 10:
            break
        shown.append(str(item))
        width += added
    rest = len(value) - len(shown)
    return "[" + " ".join(shown) + (f" ...+{rest} more]" if rest else "]")


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
