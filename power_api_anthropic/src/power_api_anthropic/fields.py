"""Reading a request body's fields, with errors named as Anthropic names them
(``messages.0.content.1.text: Input should be a valid string``)."""

from __future__ import annotations

from typing import Any

from power_core.errors import InvalidRequest


def invalid(path: str, problem: str) -> InvalidRequest:
    """A 400 about the field at ``path``."""
    return InvalidRequest(f"{path}: {problem}", param=path)


class Fields:
    """The fields of one JSON object at ``prefix`` (``""`` for the body itself)."""

    def __init__(self, value: Any, prefix: str = "") -> None:
        if not isinstance(value, dict):
            raise invalid(prefix.rstrip(".") or "body", "Input should be a valid dictionary")
        self.values: dict[str, Any] = value
        self.prefix = prefix

    def path(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def has(self, key: str) -> bool:
        return self.values.get(key) is not None

    def raw(self, key: str, *, required: bool = False) -> Any:
        value = self.values.get(key)
        if value is None and required:
            raise invalid(self.path(key), "Field required")
        return value

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.raw(key, required=required)
        if value is not None and not isinstance(value, str):
            raise invalid(self.path(key), "Input should be a valid string")
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid(self.path(key), "Input should be a valid boolean")
        return value

    def integer(
        self, key: str, *, required: bool = False, minimum: int | None = None
    ) -> int | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(self.path(key), "Input should be a valid integer")
        if minimum is not None and value < minimum:
            raise invalid(self.path(key), f"Input should be greater than or equal to {minimum}")
        return value

    def number(self, key: str, low: float, high: float) -> float | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(self.path(key), "Input should be a valid number")
        if not low <= value <= high:
            raise invalid(self.path(key), f"Input should be between {low:g} and {high:g}")
        return float(value)

    def array(self, key: str, *, required: bool = False) -> list[Any] | None:
        value = self.raw(key, required=required)
        if value is not None and not isinstance(value, list):
            raise invalid(self.path(key), "Input should be a valid list")
        return value

    def object(self, key: str, *, required: bool = False) -> Fields | None:
        value = self.raw(key, required=required)
        return None if value is None else Fields(value, f"{self.path(key)}.")

    def strings(self, key: str) -> list[str]:
        values = self.array(key) or []
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise invalid(f"{self.path(key)}.{index}", "Input should be a valid string")
        return values
