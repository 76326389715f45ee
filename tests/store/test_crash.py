"""``kill -9`` in the middle of a pull or a create leaves a valid store, and the next try works."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from power_core.library import ModelLibrary
from power_core.pull.url import UrlSource
from power_core.store.local import LocalStore

MIB = 1 << 20


def cli(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("A3S_POWER_")}
    env["A3S_POWER_HOME"] = str(home)
    return subprocess.Popen(
        [sys.executable, "-m", "power_core.cli.application", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"the subprocess ended early ({process.returncode}):\n{output}")
        assert time.monotonic() < deadline, "the subprocess made no progress in 60 s"
        time.sleep(0.01)


def kill9(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)
    assert process.returncode == -signal.SIGKILL


def test_kill_during_a_pull_then_resume(
    tmp_path: Path, file_server, make_gguf: Callable[..., Path], check_store
) -> None:
    data = make_gguf("six.gguf", tensors={"token_embd.weight": (1536, 1024)}).read_bytes()
    gate = threading.Event()  # the server stalls after 2.5 MiB until released
    file_server.add("/six.gguf", data, gate=gate, gate_after=2 * MIB + MIB // 2)
    url = file_server.url("/six.gguf")
    home = tmp_path / "home"
    models = home / "models"
    part = models / "partial" / (hashlib.sha256(url.encode()).hexdigest()[:40] + ".part")

    process = cli(home, "pull", url, "--name", "six")
    try:
        wait_for(lambda: part.exists() and part.stat().st_size >= 2 * MIB, process)
        kill9(process)
    finally:
        gate.set()
        if process.poll() is None:
            process.kill()
            process.wait()

    check_store(models)
    library = ModelLibrary(LocalStore(models), [UrlSource()])
    assert library.list_models() == []
    kept = part.stat().st_size
    assert library.pull(url, name="six") == "six:latest"
    resumed = file_server.gets("/six.gguf")[-1]
    assert resumed[0]["Range"] == f"bytes={kept}-" and resumed[1] == 206
    assert library.resolve("six").model_digest == "sha256:" + hashlib.sha256(data).hexdigest()
    check_store(models)


@pytest.mark.model
def test_kill_during_create_at_many_moments(tmp_path: Path, model_path: Path, check_store) -> None:
    home = tmp_path / "home"
    models = home / "models"
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {model_path}\nSYSTEM hello\nPARAMETER temperature 0.1\n")
    tmp = models / "tmp"
    # First while the weights are being copied in, then at a spread of moments: the store
    # must be valid whatever the moment was.
    process = cli(home, "create", "victim", "-f", str(modelfile))
    wait_for(lambda: tmp.is_dir() and any(tmp.iterdir()), process)
    kill9(process)
    check_store(models)
    for delay in (0.1, 0.3, 0.5, 0.7, 0.9, 1.2):
        process = cli(home, "create", "victim", "-f", str(modelfile))
        time.sleep(delay)
        if process.poll() is None:
            kill9(process)
        check_store(models)
        ModelLibrary(LocalStore(models)).list_models()

    result = cli(home, "create", "victim", "-f", str(modelfile))
    assert result.wait(120) == 0
    library = ModelLibrary(LocalStore(models, stale_seconds=0))
    assert library.resolve("victim").system == "hello"
    # leftovers of the killed runs are collected; the model's blobs are not
    library.store.gc()
    assert not any(tmp.iterdir())
    check_store(models)
    assert library.resolve("victim").model_path.stat().st_size == model_path.stat().st_size
