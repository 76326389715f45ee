"""Summaries of repeated samples: median and spread, never a single lucky number."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(samples: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) with linear interpolation between closest ranks."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """Median, extremes and tail of one series of samples."""

    n: int
    median: float
    min: float
    max: float
    p99: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        values = [float(s) for s in samples if s is not None and not math.isnan(s)]
        if not values:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        return cls(
            n=len(values),
            median=statistics.median(values),
            min=min(values),
            max=max(values),
            p99=percentile(values, 99),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def spread(self, digits: int = 1, scale: float = 1.0) -> str:
        """``median (min-max)`` for tables."""
        if self.n == 0:
            return "n/a"
        return (
            f"{self.median * scale:.{digits}f} "
            f"({self.min * scale:.{digits}f}-{self.max * scale:.{digits}f})"
        )


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when either is missing or the denominator is 0."""
    if denominator == 0 or math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    return numerator / denominator


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Ratios of samples taken side by side in the same repetition (noise cancels best)."""
    return [ratio(a, b) for a, b in zip(numerators, denominators, strict=False)]


def quiet_first(
    all_values: Sequence[float], quiet_values: Sequence[float], minimum: int = 2
) -> tuple[Summary, str]:
    """The summary of the quiet samples when there are at least ``minimum`` of them (the
    figure a busy neighbour did not bend), else of all samples; and which it is."""
    quiet = Summary.of(quiet_values)
    if quiet.n >= minimum:
        return quiet, "quiet"
    return Summary.of(all_values), "all"
