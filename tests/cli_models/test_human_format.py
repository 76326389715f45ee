"""Sizes and ages in the CLI's tables, worded as Ollama words them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from power_core.cli.format import human_ago, human_size, human_until

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (512, "512 B"),
        (2_000, "2 KB"),
        (1_500_000, "1.5 MB"),
        (9_950_000, "9.9 MB"),
        (98_900_000, "98 MB"),  # whole from 10 up: cut, not rounded
        (42_500_000_000, "42 GB"),
        (1_200_000_000_000, "1.2 TB"),
    ],
)
def test_sizes(size: int, shown: str) -> None:
    assert human_size(size) == shown


@pytest.mark.parametrize(
    ("age", "shown"),
    [
        (timedelta(milliseconds=300), "Less than a second ago"),
        (timedelta(seconds=1), "1 second ago"),
        (timedelta(seconds=59), "59 seconds ago"),
        (timedelta(seconds=90), "About a minute ago"),
        (timedelta(minutes=59), "59 minutes ago"),
        (timedelta(minutes=80), "About an hour ago"),
        (timedelta(minutes=150), "3 hours ago"),  # rounded half up
        (timedelta(hours=30), "30 hours ago"),
        (timedelta(days=3), "3 days ago"),
        (timedelta(days=20), "2 weeks ago"),
        (timedelta(days=70), "2 months ago"),
        (timedelta(days=800), "2 years ago"),
    ],
)
def test_ages(age: timedelta, shown: str) -> None:
    assert human_ago(NOW - age, NOW) == shown


def test_times_to_come() -> None:
    assert human_until(NOW + timedelta(minutes=4, seconds=30), NOW) == "4 minutes from now"
    assert human_until(NOW, NOW) == "Stopping..."
