"""The resolved settings written as a ``config.yaml`` that loads back to the same settings
(``a3s-power config``): what a user sees is what they can paste into the file."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

from power_core.config import ENV_PREFIX, Settings, format_duration
from power_core.host_address import url_host

#: what an unset setting means; such a setting is shown as a comment, there being no
#: value the file could hold for "unset"
UNSET_MEANS: dict[str, str] = {
    "num_thread": "all cores",
    "ollama_version": "the release whose API the Ollama plugin follows",
}


def settings_as_yaml(settings: Settings) -> str:
    """``settings`` as config.yaml text, under a header naming the file and whether it
    exists; ``home`` is a comment (the folder of the file, so not a key of it)."""
    lines = [
        _header(settings.config_path),
        f"# home: {settings.home}  ({ENV_PREFIX}HOME; the folder of this file)",
    ]
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name in ("home", "scheme"):  # not keys: shown in the header, and in host
            continue
        if f.name == "models_dir" and value is None:
            lines.append(f"# models_dir: ({settings.models_path}: 'models' in home)")
        elif value is None:
            lines.append(f"# {f.name}: ({UNSET_MEANS[f.name]})")
        elif f.name == "host" and settings.scheme != "http":
            lines.append(_yaml_line("host", f"{settings.scheme}://{url_host(value)}"))
        else:
            lines.append(_yaml_line(f.name, _plain(f.name, value)))
    return "\n".join(lines) + "\n"


def _header(path: Path) -> str:
    if path.is_file():
        return f"# {path} (then the environment)"
    legacy = path.with_name("config.toml")
    if legacy.is_file():
        return f"# {path} (not present: {legacy.name}, defaults and environment)"
    return f"# {path} (not present: defaults and environment)"


def _plain(key: str, value: Any) -> Any:
    """A setting as the value config.yaml gives it."""
    if key == "keep_alive":
        return format_duration(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _yaml_line(key: str, value: Any) -> str:
    import yaml  # deferred, as in config.py: most commands never need it

    # block style for the mapping, flow style for a list: ``origins: ['*']`` on one line
    flow = None if isinstance(value, list) else False
    text = yaml.safe_dump({key: value}, default_flow_style=flow, allow_unicode=True, width=math.inf)
    return text.rstrip("\n")
