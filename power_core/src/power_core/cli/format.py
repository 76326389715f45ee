"""Human-friendly sizes and times for CLI tables (as Ollama prints them)."""

from __future__ import annotations

from datetime import datetime


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
    for limit, unit, div in ((60, "second", 1), (3600, "minute", 60), (86400, "hour", 3600),
                             (86400 * 30, "day", 86400), (86400 * 365, "month", 86400 * 30)):
        if seconds < limit:
            n = int(seconds // div)
            break
    else:
        n, unit = int(seconds // (86400 * 365)), "year"
    if n <= 1:
        return f"{'About a' if unit == 'hour' else 'a'} {unit}" if n == 1 else f"1 {unit}"
    return f"{n} {unit}s"


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
