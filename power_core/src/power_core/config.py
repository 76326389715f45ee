"""Settings: defaults < ``config.yaml`` (or the Rust tool's ``config.toml``) < environment < CLI.

Every field is optional. Invalid configuration raises :class:`ConfigError` with one line that
names the file, the key and what was expected.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from power_core.errors import ConfigError
from power_core.host_address import EXPECTED as HOST_EXPECTED
from power_core.host_address import parse_host

log = logging.getLogger(__name__)

ENV_PREFIX = "A3S_POWER_"
DEFAULT_HOME = Path.home() / ".a3s" / "power"


def power_home(environ: Mapping[str, str] | None = None) -> Path:
    """The folder holding ``config.yaml`` and (by default) ``models``; ``A3S_POWER_HOME`` wins."""
    env = os.environ if environ is None else environ
    home = env.get(ENV_PREFIX + "HOME")
    return Path(home).expanduser() if home else DEFAULT_HOME


_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from ``"5m"``, ``"30s"``, ``"1h"``, ``"-1"``, ``300`` (Ollama's ``keep_alive``).

    A negative value means "forever", and so does one longer than Go's (and so Ollama's)
    durations can be, about 292 years (an expiry that far off would not fit a date either).
    Raises ``ValueError`` for anything else, NaN included.
    """
    seconds = _duration_seconds(value)
    if math.isnan(seconds):
        raise ValueError(f"expected a duration like '5m' or seconds, got {value!r}")
    # forever either way; -1 also writes back as a duration (format_duration), -inf not
    return -1.0 if abs(seconds) > MAX_DURATION_SECONDS else seconds


#: the longest duration kept as one: Go's ``time.Duration`` counts nanoseconds in an int64
MAX_DURATION_SECONDS = (2**63 - 1) / 1e9


def format_duration(seconds: float) -> str:
    """A duration as a person writes it and :func:`parse_duration` reads it back exactly:
    ``5m``, ``1h30m``, ``45s``, ``0.5s``, ``0``; a negative one (forever) in seconds."""
    if seconds < 0 or not seconds.is_integer():
        # positional, never "1e-05": the loader reads no exponents
        text = format(Decimal(repr(seconds)).normalize(), "f")
        return text if seconds < 0 else text + "s"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0"


def _duration_seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '5m' or seconds, got {value!r}")
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an int beyond any float: forever either way
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        # Go-style compound durations such as "1h30m"
        parts = re.findall(r"(-?\d+(?:\.\d+)?)(ms|s|m|h)", value.strip())
        if parts and "".join(n + u for n, u in parts) == value.strip():
            return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    raise ValueError(f"expected a duration like '5m', '30s', '1h' or seconds, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one process."""

    host: str = "127.0.0.1"
    port: int = 11435
    #: how client commands reach the server: ``https`` when ``host`` says so (a proxy in
    #: front); not a key of its own
    scheme: str = "http"
    home: Path = field(default_factory=power_home)
    #: defaults to ``<home>/models``
    models_dir: Path | None = None
    max_loaded_models: int = 2
    #: seconds; negative keeps models loaded forever
    keep_alive: float = 300.0
    num_parallel: int = 4
    max_queue: int = 512
    num_ctx: int = 4096
    num_batch: int = 512
    num_thread: int | None = None
    #: decode with fewer threads while other processes keep cores busy (llama.cpp's threads
    #: wait for each other at every step, so one without a core stalls them all)
    adapt_threads: bool = True
    use_mmap: bool = True
    #: layers of each model offloaded to the GPUs (Ollama's ``num_gpu``): -1 for as many
    #: as fit in their free memory, 0 for none (a backend without GPUs ignores it)
    num_gpu: int = -1
    #: llama.cpp's flash attention; off by default: on CPUs its kernels decode slower
    flash_attention: bool = False
    #: the KV cache's element type (Ollama's OLLAMA_KV_CACHE_TYPE); a quantized one needs
    #: flash attention and is used only with it
    kv_cache_type: str = "f16"
    #: extra CORS origins besides localhost ones (``*`` allows any)
    origins: tuple[str, ...] = ()
    #: name of the store plugin
    store: str = "local"
    #: bearer keys for the HTTP APIs; empty accepts any ``Authorization``
    api_keys: tuple[str, ...] = ()
    #: request bodies larger than this are refused (bytes)
    max_body_bytes: int = 64 * 1024 * 1024
    #: seconds a write to a client waits for it to read before the connection is closed
    send_timeout: int = 60
    #: the disk that responses kept for ``previous_response_id`` (OpenAI's ``store``) may
    #: take under ``<home>/responses``; the least recently used go first
    stored_responses_bytes: int = 1 << 30
    log_level: str = "info"
    #: the Ollama release ``/api/version`` reports; None: the one whose API the Ollama
    #: plugin follows (tools such as VS Code's Copilot refuse servers below a minimum)
    ollama_version: str | None = None

    @property
    def models_path(self) -> Path:
        """Where blobs and manifests live."""
        return self.models_dir if self.models_dir is not None else self.home / "models"

    @property
    def config_path(self) -> Path:
        return self.home / "config.yaml"


_FIELD_TYPES: dict[str, str] = {
    "host": HOST_EXPECTED,
    "port": "an integer from 1 to 65535",
    "models_dir": "a path",
    "max_loaded_models": "a positive integer",
    "keep_alive": "a duration like '5m' or seconds",
    "num_parallel": "a positive integer",
    "max_queue": "a positive integer",
    "num_ctx": "a positive integer",
    "num_batch": "a positive integer",
    "num_thread": "a positive integer",
    "adapt_threads": "true or false",
    "use_mmap": "true or false",
    "num_gpu": "an integer: -1 for as many layers as fit, 0 for none",
    "flash_attention": "true or false",
    "kv_cache_type": "one of f16, q8_0, q4_0",
    "origins": "a list of origins",
    "store": "a store plugin name",
    "api_keys": "a list of strings",
    "max_body_bytes": "a positive integer",
    "send_timeout": "a positive integer (seconds)",
    "stored_responses_bytes": "a positive integer",
    "log_level": "one of debug, info, warning, error",
    "ollama_version": "a version like 0.13.0",
}
_BOOLS = {"use_mmap", "flash_attention", "adapt_threads"}
#: an Ollama release number, as clients parse it: major.minor.patch in ASCII digits
_RELEASE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")
#: KV cache element types, as Ollama names them
KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
_POSITIVE_INTS = {
    "max_loaded_models",
    "num_parallel",
    "max_queue",
    "num_ctx",
    "num_batch",
    "num_thread",
    "max_body_bytes",
    "send_timeout",
    "stored_responses_bytes",
}


def _coerce(key: str, value: Any, from_text: bool) -> Any:
    """Check and convert one value; raises ValueError with what was expected."""
    expected = _FIELD_TYPES[key]
    if key in _POSITIVE_INTS or key == "port":
        digits = value.strip().lstrip("-") if isinstance(value, str) else ""
        if from_text and digits.isdecimal() and len(digits) <= 18:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(expected)
        if key == "port" and value > 65535:
            raise ValueError(expected)
        return value
    if key == "num_gpu":
        text = value.strip() if from_text and isinstance(value, str) else ""
        if re.fullmatch(r"-?[0-9]{1,18}", text):
            value = int(text)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(expected)
        return max(value, -1)
    if key == "keep_alive":
        try:
            return parse_duration(value)
        except ValueError:
            raise ValueError(expected) from None
    if key in _BOOLS:
        if (
            from_text
            and isinstance(value, str)
            and value.lower() in {"1", "true", "yes", "0", "false", "no"}
        ):
            return value.lower() in {"1", "true", "yes"}
        if not isinstance(value, bool):
            raise ValueError(expected)
        return value
    if key in {"origins", "api_keys"}:
        if from_text and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(expected)
        return tuple(value)
    if key == "models_dir":
        if not isinstance(value, str) or not value or "\0" in value:
            raise ValueError(expected)
        return Path(value).expanduser()
    if key == "log_level":
        if not isinstance(value, str) or value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError(expected)
        return value.lower()
    if key == "ollama_version":
        if not isinstance(value, str) or not _RELEASE.fullmatch(value.strip()):
            raise ValueError(expected)
        return value.strip()
    if key == "kv_cache_type":
        if not isinstance(value, str) or value.lower() not in KV_CACHE_TYPES:
            raise ValueError(expected)
        return value.lower()
    if not isinstance(value, str) or not value:
        raise ValueError(expected)
    return value


def _apply(
    values: dict[str, Any],
    source: Mapping[str, Any],
    where: str,
    from_text: bool,
    strict: bool = True,
) -> None:
    for key, value in source.items():
        if key not in _FIELD_TYPES:
            if strict:
                known = ", ".join(sorted(_FIELD_TYPES))
                raise ConfigError(f"{where}: unknown key '{key}' (known keys: {known})")
            continue
        if value is None:
            continue
        try:
            if key == "host":
                _apply_host(values, value, port_apart="port" in source)
            else:
                values[key] = _coerce(key, value, from_text)
        except ValueError as exc:
            raise ConfigError(f"{where}: '{key}' must be {exc}, got {value!r}") from None


def _apply_host(values: dict[str, Any], value: Any, port_apart: bool) -> None:
    """``host`` may carry a port and a scheme, as ``OLLAMA_HOST`` does; a port set apart in
    the same place wins over the one in ``host``."""
    if not isinstance(value, str):
        raise ValueError(HOST_EXPECTED)
    address = parse_host(value)
    if address.host is not None:
        values["host"] = address.host
    if address.port is not None and not port_apart:
        values["port"] = address.port
    values["scheme"] = address.scheme or "http"


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # deferred: only needed when the file exists

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


#: the keys of the Rust tool's ``config.toml`` that mean the same here (and ``models_dir``,
#: which this tool has always read there); its others (``gpu``, ``tee_mode``, ``api_keys``
#: holding hashes of keys, ...) have no counterpart or another meaning
RUST_TOML_KEYS = (
    "host",
    "port",
    "max_loaded_models",
    "keep_alive",
    "num_parallel",
    "num_thread",
    "flash_attention",
    "models_dir",
)


def _read_rust_toml(path: Path) -> tuple[dict[str, Any], bool]:
    """The keys both tools share from the original Rust tool's ``config.toml``, and whether
    it requires API keys; the others are named in a warning. Not an error, as an unknown
    key of config.yaml is: they were right for the tool that wrote the file, and a server
    that started with it still does."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    wants_keys = bool(data.get("api_keys"))
    shared = {k: v for k, v in data.items() if k in RUST_TOML_KEYS}
    ignored = [key for key in data if key not in RUST_TOML_KEYS and key != "gpu"]
    gpu = data.get("gpu")
    if isinstance(gpu, dict):
        # its [gpu] gpu_layers is llama.cpp's n_gpu_layers, as num_gpu is (-1: all)
        if "gpu_layers" in gpu:
            shared["num_gpu"] = gpu["gpu_layers"]
        ignored += [f"gpu.{key}" for key in gpu if key != "gpu_layers"]
    elif "gpu" in data:
        ignored.append("gpu")
    if ignored:
        log.warning(
            "%s: ignoring %s: from the Rust tool's config.toml only %s are read; "
            "a config.yaml beside it takes every setting (and replaces it)",
            path,
            ", ".join(f"'{key}'" for key in ignored),
            ", ".join([*RUST_TOML_KEYS, "gpu.gpu_layers"]),
        )
    return shared, wants_keys


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings with precedence CLI ``overrides`` > environment > file > defaults."""
    env = os.environ if environ is None else environ
    home = power_home(env)
    values: dict[str, Any] = {}
    yaml_path = home / "config.yaml"
    toml_path = home / "config.toml"
    toml_wants_keys = False
    if yaml_path.is_file():
        _apply(values, _read_yaml(yaml_path), str(yaml_path), from_text=False)
    elif toml_path.is_file():
        shared, toml_wants_keys = _read_rust_toml(toml_path)
        _apply(values, shared, str(toml_path), from_text=False)
    env_values = {
        key: env[ENV_PREFIX + key.upper()]
        for key in _FIELD_TYPES
        if ENV_PREFIX + key.upper() in env
    }
    # one variable at a time, to name it in an error; in the order of _FIELD_TYPES, so
    # A3S_POWER_PORT comes after (and wins over) a port in A3S_POWER_HOST
    for key, value in env_values.items():
        _apply(
            values, {key: value}, f"environment variable {ENV_PREFIX + key.upper()}", from_text=True
        )
    if overrides:
        _apply(
            values,
            {k: v for k, v in overrides.items() if v is not None},
            "command line",
            from_text=True,
        )
    if toml_wants_keys and not values.get("api_keys"):
        # its keys are hashes, which cannot be checked against a bearer key; serving
        # without keys would open a server its owner meant to close
        raise ConfigError(
            f"{toml_path}: api_keys holds hashes of keys, which this server cannot check: "
            f"set the keys themselves in {yaml_path} (api_keys) or {ENV_PREFIX}API_KEYS"
        )
    return replace(Settings(home=home), **values)
