"""Every hook is documented in plugins.md, and the docs' example plugin really registers."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from power_core import hookspecs

PLUGINS_MD = Path(__file__).resolve().parents[2] / "plugins.md"


def hook_names() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "a3s_power_spec")
    ]


def test_there_are_hooks() -> None:
    assert set(hook_names()) >= {
        "register_backends",
        "register_api_surfaces",
        "register_stores",
        "register_model_sources",
        "register_commands",
    }


def test_every_hook_has_a_section_in_plugins_md() -> None:
    sections = set(re.findall(r"^### (\w+)$", PLUGINS_MD.read_text(), flags=re.MULTILINE))
    missing = [name for name in hook_names() if name not in sections]
    assert not missing, f"hooks without a section in plugins.md: {missing}"


def test_every_hook_has_a_reference_docstring() -> None:
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert ":param register:" in doc, name
