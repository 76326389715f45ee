"""Human-friendly sizes and times for CLI tables (as Ollama prints them)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from power_core.models import ModelSummary


def human_size(size: int) -> str:
    """A size as Ollama prints one: decimal units, whole from 10 up (``98 MB``, ``42 GB``),
    one decimal below when there is one (``1.5 MB``, ``2 KB``)."""
    value = float(size)
    unit = "B"
    for larger in ("KB", "MB", "GB", "TB"):
        if value < 1000:
            break
        value /= 1000
        unit = larger
    if unit == "B" or value >= 10 or value == int(value):
        return f"{int(value)} {unit}"
    return f"{value:.1f} {unit}"


def _span(seconds: float) -> str:
    """A duration as Ollama words one: ``About a minute``, ``30 hours``, ``2 weeks``."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole < 60:
        return "1 second" if whole == 1 else f"{whole} seconds"
    minutes = whole // 60
    if minutes < 60:
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)  # rounded half up, as Go rounds
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    for limit, hours_each, name in (
        (24 * 7 * 2, 24, "days"),
        (24 * 30 * 2, 24 * 7, "weeks"),
        (24 * 365 * 2, 24 * 30, "months"),
    ):
        if hours < limit:
            return f"{hours // hours_each} {name}"
    return f"{whole // 3600 // 24 // 365} years"


def human_ago(when: datetime, now: datetime) -> str:
    """``2 minutes ago``, ``Less than a second ago``."""
    return f"{_span((now - when).total_seconds())} ago"


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
