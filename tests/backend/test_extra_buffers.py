"""The trial that decides whether llama.cpp's extra weight buffers (AMX) are used: a child
process that compares logits with and without them, and the recorded verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from power_backend_llamacpp import extra_buffers
from power_backend_llamacpp.extra_buffers import Trial
from power_backend_llamacpp.extra_buffers_probe import PLAIN_DONE, same_logits

VERDICTS = "llamacpp-extra-buffers.json"
real_run_probe = extra_buffers.run_probe


def python(code: str) -> list[str]:
    """A trial command: ``code`` run with the trial's folder as ``sys.argv[1]``."""
    return [sys.executable, "-c", code]


#: crashes as a faulty kernel would: after the plain buffers' run, with faulthandler on
CRASH = python(
    "import faulthandler, os, pathlib, signal, sys; faulthandler.enable(); "
    f"pathlib.Path(sys.argv[1], 'verdict').write_text({PLAIN_DONE!r}); "
    "os.kill(os.getpid(), signal.SIGSEGV)"
)
EARLY_CRASH = python("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
DIFFERENT = python(
    "import pathlib, sys; pathlib.Path(sys.argv[1], 'verdict').write_text('different'); "
    "raise SystemExit(1)"
)
BROKEN = python("raise RuntimeError('no gguf here')")


def test_the_installed_llama_cpp_passes_the_trial() -> None:
    # On this project's AMX VM a llama.cpp built by GCC 12 without -fno-dse dies here of
    # SIGSEGV (checked); dev.py builds it with the flag. Elsewhere the trial compares the
    # repacked buffers with the plain ones.
    trial = extra_buffers.run_probe()
    assert trial == Trial(True, True, "same logits with and without them")


def test_a_trial_that_crashes_with_the_extra_buffers_is_a_conclusive_failure() -> None:
    assert extra_buffers.run_probe(CRASH) == Trial(
        False, True, "the trial process died of SIGSEGV with them"
    )


def test_a_trial_that_crashes_before_trying_them_is_inconclusive() -> None:
    # say, a llama.cpp that refuses the probe model: nothing against the extra buffers
    assert extra_buffers.run_probe(EARLY_CRASH) == Trial(
        False, False, "the trial process died of SIGSEGV before trying them"
    )


def test_a_trial_that_finds_different_logits_is_a_conclusive_failure() -> None:
    assert extra_buffers.run_probe(DIFFERENT) == Trial(False, True, "different logits with them")


def test_a_trial_that_breaks_otherwise_is_inconclusive() -> None:
    trial = extra_buffers.run_probe(BROKEN)
    assert (trial.works, trial.conclusive) == (False, False)
    assert "status 1" in trial.detail and "no gguf here" in trial.detail


def test_a_trial_that_hangs_is_killed_and_inconclusive() -> None:
    started = time.monotonic()
    trial = extra_buffers.run_probe(python("import time; time.sleep(60)"), timeout=1.0)
    assert trial == Trial(False, False, "the trial process died of SIGKILL before trying them")
    assert time.monotonic() - started < 30


def test_a_conclusive_verdict_is_recorded_and_reused(tmp_path: Path) -> None:
    assert extra_buffers.extra_buffers_work(tmp_path) is True  # a real trial
    recorded = json.loads((tmp_path / VERDICTS).read_text())
    assert recorded[extra_buffers.build_key()]["works"] is True
    # a recorded verdict is taken without a trial: recording the opposite shows it
    recorded[extra_buffers.build_key()]["works"] = False
    (tmp_path / VERDICTS).write_text(json.dumps(recorded))
    assert extra_buffers.extra_buffers_work(tmp_path) is False


def test_a_crash_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extra_buffers, "run_probe", lambda: real_run_probe(CRASH))
    assert extra_buffers.extra_buffers_work(tmp_path) is False
    recorded = json.loads((tmp_path / VERDICTS).read_text())
    assert recorded[extra_buffers.build_key()]["works"] is False


def test_an_inconclusive_trial_is_not_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extra_buffers, "run_probe", lambda: real_run_probe(BROKEN))
    assert extra_buffers.extra_buffers_work(tmp_path) is False
    assert not (tmp_path / VERDICTS).exists()
    monkeypatch.setattr(extra_buffers, "run_probe", real_run_probe)
    assert extra_buffers.extra_buffers_work(tmp_path) is True  # tried again


def test_a_verdict_for_another_build_is_not_taken(tmp_path: Path) -> None:
    (tmp_path / VERDICTS).write_text(json.dumps({"another build": {"works": False}}))
    assert extra_buffers.extra_buffers_work(tmp_path) is True
    recorded = json.loads((tmp_path / VERDICTS).read_text())
    assert set(recorded) == {"another build", extra_buffers.build_key()}


def test_an_unreadable_verdicts_file_means_a_new_trial(tmp_path: Path) -> None:
    (tmp_path / VERDICTS).write_text("{not json")
    assert extra_buffers.extra_buffers_work(tmp_path) is True
    assert json.loads((tmp_path / VERDICTS).read_text())


def test_an_amx_cpu_loads_with_the_recorded_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("A3S_POWER_LLAMACPP_EXTRA_BUFFERS", raising=False)
    monkeypatch.setattr(extra_buffers, "cpu_has_amx", lambda: True)
    monkeypatch.setattr(extra_buffers, "_decided", None)
    folder = tmp_path / "a3s-power"
    folder.mkdir()
    (folder / VERDICTS).write_text(json.dumps({extra_buffers.build_key(): {"works": False}}))
    assert extra_buffers.use_extra_buffers() is False
    (folder / VERDICTS).unlink()
    assert extra_buffers.use_extra_buffers() is False  # decided once per process
    monkeypatch.setattr(extra_buffers, "_decided", None)
    assert extra_buffers.use_extra_buffers() is True  # a real trial
    assert (folder / VERDICTS).is_file()


@pytest.mark.parametrize("setting", ["0", "1"])
def test_the_environment_decides_without_a_trial(
    setting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("A3S_POWER_LLAMACPP_EXTRA_BUFFERS", setting)
    monkeypatch.setattr(extra_buffers, "cpu_has_amx", lambda: True)
    monkeypatch.setattr(extra_buffers, "_decided", None)
    monkeypatch.setattr(extra_buffers, "run_probe", None)  # a trial would raise
    assert extra_buffers.use_extra_buffers() is (setting == "1")


def test_the_trial_runs_on_a_native_thread_of_a_gevent_server() -> None:
    # the server loads models on native threads with the standard library patched; a
    # gevent subprocess first starts gevent's child watcher, which reaps any child
    script = f"""
from gevent import monkey; monkey.patch_all()
import subprocess, sys
from power_core.concurrency import run_on_native_thread
from power_backend_llamacpp import extra_buffers
subprocess.run(["true"], check=True)
print(run_on_native_thread(extra_buffers.run_probe, "trial"))
print(run_on_native_thread(lambda: extra_buffers.run_probe({CRASH!r}), "trial"))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    passed, crashed = done.stdout.splitlines()
    assert passed == repr(Trial(True, True, "same logits with and without them"))
    # the child watcher may reap the crashed child first: then faulthandler's report tells
    assert crashed in (
        repr(Trial(False, True, "the trial process died of SIGSEGV with them")),
        repr(Trial(False, True, "the trial process crashed with them (Segmentation fault)")),
    )


def test_a_crash_report_without_a_status_is_judged_by_the_phase() -> None:
    output = b"Fatal Python error: Segmentation fault\n\nThread 0x7f (most recent call first):\n"
    assert extra_buffers.judge(PLAIN_DONE, output, None) == Trial(
        False, True, "the trial process crashed with them (Segmentation fault)"
    )
    assert extra_buffers.judge("", output, None) == Trial(
        False, False, "the trial process crashed before trying them (Segmentation fault)"
    )
    assert not extra_buffers.judge("", b"", None).conclusive
    assert extra_buffers.judge("same", b"", None) == Trial(
        True, True, "same logits with and without them"
    )


def test_logits_compare_relative_to_the_largest() -> None:
    plain = [[10.0, -2.0, 0.5], [3.0, 1.0, -1.0]]
    assert same_logits(plain, [[10.005, -2.0, 0.5], [3.0, 1.0, -1.0]])
    assert not same_logits(plain, [[10.0, -2.0, 0.5], [3.0, 1.05, -1.0]])
