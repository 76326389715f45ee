"""The trial that decides whether llama.cpp's extra weight buffers (AMX) are used: a child
process that compares a batch's logits with and without them, and the recorded verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from power_backend_llamacpp import extra_buffers
from power_backend_llamacpp.extra_buffers_probe import same_logits


def test_the_installed_llama_cpp_passes_the_trial() -> None:
    # On this project's AMX VM a llama.cpp built by GCC 12 without -fno-dse dies here of
    # signal 11 (checked); dev.py builds it with the flag. Elsewhere the trial compares the
    # repacked buffers with the plain ones.
    works, detail = extra_buffers.run_probe()
    assert works, detail


def test_a_trial_killed_by_a_signal_fails() -> None:
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    assert extra_buffers.run_probe(crash) == (False, "the trial process died of signal 11")


def test_a_trial_that_reports_different_logits_fails() -> None:
    different = [sys.executable, "-c", "print('extra-buffers: different'); raise SystemExit(1)"]
    works, detail = extra_buffers.run_probe(different)
    assert not works
    assert "status 1" in detail and "extra-buffers: different" in detail


def test_a_trial_that_hangs_is_stopped_and_fails() -> None:
    hang = [sys.executable, "-c", "import time; time.sleep(60)"]
    started = time.monotonic()
    works, detail = extra_buffers.run_probe(hang, timeout=1.0)
    assert not works and "signal 9" in detail
    assert time.monotonic() - started < 30


def test_the_verdict_is_recorded_and_reused(tmp_path: Path) -> None:
    assert extra_buffers.extra_buffers_work(tmp_path) is True  # a real trial
    recorded = json.loads((tmp_path / "llamacpp-extra-buffers.json").read_text())
    assert recorded[extra_buffers.build_key()]["works"] is True
    # a recorded verdict is taken without a trial: recording the opposite shows it
    recorded[extra_buffers.build_key()]["works"] = False
    (tmp_path / "llamacpp-extra-buffers.json").write_text(json.dumps(recorded))
    assert extra_buffers.extra_buffers_work(tmp_path) is False


def test_a_verdict_for_another_build_is_not_taken(tmp_path: Path) -> None:
    (tmp_path / "llamacpp-extra-buffers.json").write_text(
        json.dumps({"another build": {"works": False}})
    )
    assert extra_buffers.extra_buffers_work(tmp_path) is True
    recorded = json.loads((tmp_path / "llamacpp-extra-buffers.json").read_text())
    assert set(recorded) == {"another build", extra_buffers.build_key()}


def test_an_unreadable_verdicts_file_means_a_new_trial(tmp_path: Path) -> None:
    (tmp_path / "llamacpp-extra-buffers.json").write_text("{not json")
    assert extra_buffers.extra_buffers_work(tmp_path) is True
    assert json.loads((tmp_path / "llamacpp-extra-buffers.json").read_text())


@pytest.mark.parametrize("setting", ["0", "1"])
def test_the_environment_decides_without_a_trial(
    setting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("A3S_POWER_LLAMACPP_EXTRA_BUFFERS", setting)
    monkeypatch.setattr(extra_buffers, "run_probe", None)  # a trial would raise
    assert extra_buffers.use_extra_buffers() is (setting == "1")


def test_the_trial_runs_from_a_native_thread_of_a_gevent_server(tmp_path: Path) -> None:
    # the server loads models on native threads with the standard library patched
    script = f"""
from gevent import monkey; monkey.patch_all()
from pathlib import Path
from power_core.concurrency import run_on_native_thread
from power_backend_llamacpp import extra_buffers
print(run_on_native_thread(lambda: extra_buffers.extra_buffers_work(Path({str(tmp_path)!r})), "t"))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_logits_compare_relative_to_the_largest() -> None:
    plain = [[10.0, -2.0, 0.5], [3.0, 1.0, -1.0]]
    assert same_logits(plain, [[10.005, -2.0, 0.5], [3.0, 1.0, -1.0]])
    assert not same_logits(plain, [[10.0, -2.0, 0.5], [3.0, 1.05, -1.0]])
