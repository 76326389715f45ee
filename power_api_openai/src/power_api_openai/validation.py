"""Typed, range-checked reads of request fields; every mistake is a 400 naming its field.

OpenAI treats ``null`` like an absent optional field, and so does every reader here.
"""

from __future__ import annotations

import math
from typing import Any

from power_core.errors import InvalidRequest
from power_core.json_kinds import json_kind

#: the most choices one request may ask for (the engine may allow fewer)
MAX_N = 8


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for error messages ("array", as OpenAI words it)."""
    return json_kind(value).rsplit(" ", 1)[-1]


def invalid_type(param: str, expected: str, value: Any) -> InvalidRequest:
    """The error for a field of the wrong type."""
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {json_type(value)}.",
        param=param,
    )


class Fields:
    """Reads the fields of one JSON object; ``prefix`` makes ``param`` a full path."""

    def __init__(self, body: dict[str, Any], prefix: str = "") -> None:
        self.body = body
        self.prefix = prefix

    def param(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def has(self, name: str) -> bool:
        return self.body.get(name) is not None

    def raw(self, name: str) -> Any:
        return self.body.get(name)

    def string(self, name: str, *, required: bool = False, non_empty: bool = False) -> str | None:
        value = self.body.get(name)
        if value is None:
            if required:
                raise InvalidRequest(
                    f"Missing required parameter: '{self.param(name)}'.", param=self.param(name)
                )
            return None
        if not isinstance(value, str):
            raise invalid_type(self.param(name), "a string", value)
        if non_empty and not value:
            raise InvalidRequest(f"'{self.param(name)}' must not be empty.", param=self.param(name))
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.body.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid_type(self.param(name), "a boolean", value)
        return value

    def number(
        self, name: str, low: float | None = None, high: float | None = None
    ) -> float | None:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid_type(self.param(name), "a number", value)
        if not math.isfinite(value):
            raise InvalidRequest(
                f"'{self.param(name)}' must be a finite number.", param=self.param(name)
            )
        self._check_range(name, value, low, high)
        return float(value)

    def integer(self, name: str, low: int | None = None, high: int | None = None) -> int | None:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_type(self.param(name), "an integer", value)
        self._check_range(name, value, low, high)
        return value

    def object(self, name: str, *, required: bool = False) -> dict[str, Any] | None:
        value = self.body.get(name)
        if value is None:
            if required:
                raise InvalidRequest(
                    f"Missing required parameter: '{self.param(name)}'.", param=self.param(name)
                )
            return None
        if not isinstance(value, dict):
            raise invalid_type(self.param(name), "an object", value)
        return value

    def array(self, name: str, *, required: bool = False) -> list[Any] | None:
        value = self.body.get(name)
        if value is None:
            if required:
                raise InvalidRequest(
                    f"Missing required parameter: '{self.param(name)}'.", param=self.param(name)
                )
            return None
        if not isinstance(value, list):
            raise invalid_type(self.param(name), "an array", value)
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.string(name)
        if value is None:
            return default
        if value not in allowed:
            options = ", ".join(f"'{a}'" for a in allowed)
            raise InvalidRequest(
                f"Invalid value for '{self.param(name)}': '{value}'. Supported values are: "
                f"{options}.",
                param=self.param(name),
            )
        return value

    def _check_range(self, name: str, value: float, low: float | None, high: float | None) -> None:
        if low is not None and value < low:
            raise InvalidRequest(
                f"Invalid value for '{self.param(name)}': {value} is below the minimum of {low}.",
                param=self.param(name),
            )
        if high is not None and value > high:
            raise InvalidRequest(
                f"Invalid value for '{self.param(name)}': {value} is above the maximum of {high}.",
                param=self.param(name),
            )

    # ------------------------------------------------------------------ shared OpenAI fields
    def model(self) -> str:
        """The required ``model`` name."""
        name = self.string("model", required=True, non_empty=True)
        assert name is not None
        return name

    def stop(self) -> list[str]:
        """``stop``: a string or strings; empty strings stop nothing and are dropped.

        OpenAI's own API takes at most four; like Ollama, any number is taken here, since
        clients send more to servers that are not OpenAI's (Continue's autocomplete, 7 to 9).
        """
        value = self.body.get("stop")
        if value is None:
            return []
        if isinstance(value, str):
            return [value] if value else []
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise invalid_type("stop", "a string or an array of strings", value)
        return [s for s in value if s]

    def n(self) -> int:
        """``n``: how many choices, 1 to :data:`MAX_N`."""
        value = self.integer("n", 1, MAX_N)
        return 1 if value is None else value

    def logit_bias(self) -> dict[int, float]:
        """``logit_bias``: token id strings mapped to biases from -100 to 100."""
        value = self.object("logit_bias")
        if value is None:
            return {}
        bias: dict[int, float] = {}
        for key, amount in value.items():
            token = key.strip()
            if not (token.isascii() and token.isdecimal() and len(token) <= 10):
                raise InvalidRequest(
                    f"Invalid key in 'logit_bias': {key!r} is not a token id.",
                    param="logit_bias",
                )
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise invalid_type(f"logit_bias.{key}", "a number", amount)
            if not -100 <= amount <= 100:
                raise InvalidRequest(
                    f"Invalid value in 'logit_bias' for token {key}: {amount} is outside "
                    "-100 to 100.",
                    param="logit_bias",
                )
            bias[int(token)] = float(amount)
        return bias

    def stream_options(self, stream: bool) -> bool:
        """``stream_options.include_usage``; the options are only allowed with ``stream``."""
        options = self.object("stream_options")
        if options is None:
            return False
        if not stream:
            raise InvalidRequest(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        return Fields(options, "stream_options.").boolean("include_usage")
