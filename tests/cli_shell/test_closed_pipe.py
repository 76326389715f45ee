"""``a3s-power config | head -5``: a reader that leaves early is no error (exit status 0,
nothing on stderr), as for cleo's own commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import power_env


@pytest.mark.parametrize("args", [["version"], ["config"], ["list"], []])
def test_a_closed_stdout_exits_quietly(tmp_path: Path, args: list[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before a byte is written: every write fails
    try:
        result = subprocess.run(
            [sys.executable, "-m", "power_core.cli.application", *args],
            env=power_env(tmp_path),
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (0, "")
