"""Human-friendly sizes and times for CLI tables (as Ollama prints them)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from power_core.models import ModelSummary

_SPANS = (
    (60.0, "second", 1.0),
    (3600.0, "minute", 60.0),
    (86400.0, "hour", 3600.0),
    (86400.0 * 30, "day", 86400.0),
    (86400.0 * 365, "month", 86400.0 * 30),
    (float("inf"), "year", 86400.0 * 365),
)


def human_size(size: int) -> str:
    """``98 MB``, ``1.2 GB`` (decimal units, like Ollama)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit in {"B", "KB", "MB"} else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    _limit, name, div = next(span for span in _SPANS if seconds < span[0])
    count = int(seconds // div)
    if count == 1:
        return f"About an {name}" if name == "hour" else f"1 {name}"
    return f"{count} {name}s"


def human_ago(when: datetime, now: datetime) -> str:
    """``2 minutes ago``, ``Less than a second ago``."""
    seconds = (now - when).total_seconds()
    if seconds < 1:
        return "Less than a second ago"
    return f"{_span(seconds)} ago"


def human_until(when: datetime, now: datetime) -> str:
    """``4 minutes from now``."""
    seconds = (when - now).total_seconds()
    if seconds < 1:
        return "Stopping..."
    return f"{_span(seconds)} from now"


def models_table(models: Iterable[ModelSummary]) -> list[str]:
    """The lines of ``list``: name, ID, size and age, in aligned columns."""
    rows = [["NAME", "ID", "SIZE", "MODIFIED"]]
    now = datetime.now().astimezone()
    for model in models:
        age = human_ago(model.modified_at, now)
        rows.append([model.name, model.digest[:12], human_size(model.size), age])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "    ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
