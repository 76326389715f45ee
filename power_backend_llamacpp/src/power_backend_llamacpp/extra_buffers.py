"""Whether llama.cpp may put weights in its extra CPU buffer types (repacked, AMX).

On CPUs with AMX, llama.cpp keeps quantized weights in its AMX buffer type, and decoding
runs far faster there (SmolLM2-135M Q4_1 on this project's 2-core VM, ``llama-bench``: one
stream 215 tokens/s against 97 without, a 256-token prompt read at 1,222 against 323). But a
llama.cpp compiled by GCC 12 faults in its first batched matrix product: GCC 12 declares
that ``_tile_loadconfig`` reads 8 bytes of the 64-byte tile configuration, its optimiser
drops the other stores, and ``ldtilecfg`` raises a general-protection fault that takes the
whole process down. (``python3 dev.py`` builds llama-cpp-python with ``-fno-dse``, which
keeps those stores.) Nothing visible from Python tells a faulty build from a sound one, so
on an AMX CPU the first load tries the extra buffers in a child process
(:mod:`power_backend_llamacpp.extra_buffers_probe`) and uses them only if the child
decodes with them to the same logits as without. A verdict (the same logits; different
ones; a crash once the plain buffers have decoded) is kept per llama.cpp build (a digest of
its libraries), kernel and CPU in ``~/.cache/a3s-power`` (``$XDG_CACHE_HOME``), so each
build is tried once; a trial that ends otherwise (timed out, killed, crashed before the
extra buffers were tried) leaves them off in this process only, and the next one tries
again.

``A3S_POWER_LLAMACPP_EXTRA_BUFFERS=1`` or ``=0`` decides without a trial.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from power_backend_llamacpp.extra_buffers_probe import PLAIN_DONE, VERDICT_FILE
from power_core.concurrency import allocate_native_lock, unpatched

log = logging.getLogger(__name__)

#: bump when the trial changes, so that earlier verdicts are not reused
_PROBE_VERSION = 3
#: a trial takes about 0.25 s here; one that hangs is stopped
_PROBE_TIMEOUT = 120.0
_VERDICTS_FILE = "llamacpp-extra-buffers.json"
#: signals a faulty kernel dies of; others (SIGKILL, SIGTERM, SIGINT) come from outside
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT}
#: what faulthandler prints in the child when one of those arrives
_CRASH_REPORT = re.compile(rb"Fatal Python error: ([^\n]+)")

_lock = allocate_native_lock()
_decided: bool | None = None


class Trial(NamedTuple):
    """What a trial found: ``works``; ``conclusive`` when it is worth recording."""

    works: bool
    conclusive: bool
    detail: str


def use_extra_buffers() -> bool:
    """Whether to load weights into llama.cpp's extra CPU buffer types in this process."""
    global _decided
    setting = os.environ.get("A3S_POWER_LLAMACPP_EXTRA_BUFFERS", "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    if not cpu_has_amx():
        return True
    with _lock:
        if _decided is None:
            try:
                _decided = extra_buffers_work(verdicts_folder())
            except Exception:  # the trial itself broke: be safe, without recording it
                log.exception("could not try llama.cpp's AMX buffers; running without them")
                _decided = False
        return _decided


def cpu_has_amx() -> bool:
    """Whether this CPU announces AMX tiles (Linux only)."""
    return "amx_tile" in _cpu_flags().split()


def verdicts_folder() -> Path:
    """``$XDG_CACHE_HOME/a3s-power``, else ``~/.cache/a3s-power``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "a3s-power"


def extra_buffers_work(folder: Path) -> bool:
    """The recorded verdict for this llama.cpp build and CPU, else a trial's."""
    key = build_key()
    recorded = recorded_verdict(folder, key)
    if recorded is not None:
        return bool(recorded["works"])
    return try_and_record(folder, key).works


def recorded_verdict(folder: Path, key: str) -> dict[str, object] | None:
    """The verdict recorded in ``folder`` for ``key`` (``works``, ``detail``, ``checked``)."""
    recorded = _read_verdicts(folder).get(key)
    if isinstance(recorded, dict) and isinstance(recorded.get("works"), bool):
        return recorded
    return None


def try_and_record(folder: Path, key: str) -> Trial:
    """Run a trial now and record its verdict, if it reached one; warns when it failed."""
    trial = run_probe()
    if trial.conclusive:
        if not trial.works:
            log.warning(
                "llama.cpp's AMX kernels failed a trial run (%s); weights stay in plain "
                "buffers, which decode about half as fast on this CPU. A llama.cpp built by "
                "GCC 12 faults in them: rebuild llama-cpp-python with -fno-dse (%s; "
                "python3 dev.py does)",
                trial.detail,
                rebuild_command(),
            )
        _record(folder, key, {"works": trial.works, "detail": trial.detail})
    else:
        log.warning(
            "could not try llama.cpp's AMX buffers (%s); running without them this time",
            trial.detail,
        )
    return trial


def explain(retry: bool = False) -> tuple[bool | None, str]:
    """Whether a model loaded now would use the extra buffers (None: not tried yet), and
    why; ``retry`` runs a new trial first (``a3s-power llamacpp --retry``)."""
    setting = os.environ.get("A3S_POWER_LLAMACPP_EXTRA_BUFFERS", "").strip()
    nothing_to_try = " (no trial: nothing to retry)" if retry else ""
    if setting in ("0", "1"):
        return setting == "1", f"A3S_POWER_LLAMACPP_EXTRA_BUFFERS={setting}{nothing_to_try}"
    if not cpu_has_amx():
        return True, f"no AMX on this CPU, nothing to try{nothing_to_try}"
    folder, key = verdicts_folder(), build_key()
    if retry:
        trial = try_and_record(folder, key)
        if not trial.conclusive:
            kept = "not recorded: no verdict"
        elif recorded_verdict(folder, key) is None:
            kept = f"could not be recorded in {folder}"
        else:
            kept = "recorded"
        return trial.works, f"{trial.detail} (tried now, {kept})"
    recorded = recorded_verdict(folder, key)
    if recorded is None:
        return None, "not tried yet for this build: the first model load tries them"
    checked = recorded.get("checked")
    when = (
        time.strftime("%Y-%m-%d %H:%M", time.localtime(checked))
        if isinstance(checked, int)
        else "earlier"
    )
    where = folder / _VERDICTS_FILE
    return bool(recorded["works"]), f"{recorded.get('detail', '')} (tried {when}; {where})"


def rebuild_command() -> str:
    """The pip command that rebuilds the installed llama-cpp-python with ``-fno-dse``."""
    try:
        pinned = f"llama-cpp-python=={importlib.metadata.version('llama-cpp-python')}"
    except importlib.metadata.PackageNotFoundError:
        pinned = "llama-cpp-python"
    return (
        "CXXFLAGS=-fno-dse pip install --force-reinstall --no-deps --no-cache-dir "
        f'--no-binary llama-cpp-python "{pinned}"'
    )


def build_key() -> str:
    """A digest of the CPU's flags, the kernel (which grants AMX state to threads) and the
    llama.cpp libraries that will be loaded: the contents of ggml's CPU backend (where the
    AMX kernels are), the size and time of the rest (hashing them all would take 30 ms)."""
    kernel = " ".join(os.uname()) if hasattr(os, "uname") else sys.platform
    digest = hashlib.sha256(f"probe {_PROBE_VERSION}\n{_cpu_flags()}\n{kernel}\n".encode())
    for library in _llama_cpp_libraries():
        stat = library.stat()
        digest.update(f"{library}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        if library.name.startswith("libggml-cpu") or library.name.startswith("ggml-cpu"):
            with library.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()


def run_probe(command: list[str] | None = None, timeout: float = _PROBE_TIMEOUT) -> Trial:
    """Run the trial (``command`` plus a scratch folder) in a child process."""
    argv = command or [sys.executable, "-m", "power_backend_llamacpp.extra_buffers_probe"]
    with tempfile.TemporaryDirectory(prefix="a3s-power-probe-") as folder:
        output, status = _run_child([*argv, folder], timeout)
        try:
            verdict = (Path(folder) / VERDICT_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            verdict = ""
    return judge(verdict, output, status)


def judge(verdict: str, output: bytes, status: int | None) -> Trial:
    """A trial's result from the verdict file, the child's output and its exit status
    (negative: a signal; None: another waiter took it)."""
    if verdict == "same":
        return Trial(True, True, "same logits with and without them")
    if verdict == "different":
        return Trial(False, True, "different logits with them")
    tail = output[-300:].decode("utf-8", errors="replace").strip() or "no output"
    # a crash counts against the extra buffers only once the plain ones have decoded
    with_extra = verdict == PLAIN_DONE
    phase = "with them" if with_extra else "before trying them"
    report = _CRASH_REPORT.search(output)
    if status is None and report is not None:  # another waiter took the status
        reason = report[1].decode("utf-8", errors="replace")
        return Trial(False, with_extra, f"the trial process crashed {phase} ({reason})")
    if status is not None and status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        crashed = with_extra and -status in _CRASH_SIGNALS
        return Trial(False, crashed, f"the trial process died of {name} {phase}")
    return Trial(False, False, f"the trial process ended with status {status}: {tail}")


def _run_child(argv: list[str], timeout: float) -> tuple[bytes, int | None]:
    """Spawn ``argv`` in its own session with stdout and stderr on a pipe and read until
    it exits or ``timeout`` passes (then kill it); returns the output and the exit status
    (negative: a signal), or None where it could not be had.

    Uses the original ``os``, ``select`` and ``time`` functions: this runs on a native
    thread of a server that gevent has patched, whose child watcher may reap the child."""
    spawn = unpatched("os", "posix_spawn")  # gevent's would watch the child from its hub
    read_end, write_end = os.pipe()
    try:
        pid = spawn(
            argv[0],
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, write_end, 1),
                (os.POSIX_SPAWN_DUP2, write_end, 2),
                (os.POSIX_SPAWN_CLOSE, read_end),
            ],
            setsid=True,  # a Ctrl-C meant for the server is not the trial's failure
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        _read_until_closed(read_end, chunks, deadline)
    except BaseException:  # interrupted: do not wait for the child
        deadline = time.monotonic()
        raise
    finally:
        os.close(read_end)
        status = _reap(pid, deadline)
    return b"".join(chunks), status


def _read_until_closed(fd: int, chunks: list[bytes], deadline: float) -> None:
    poller = unpatched("select", "poll")()
    poller.register(fd, unpatched("select", "POLLIN"))
    while True:
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        if not poller.poll(remaining_ms):
            return  # timed out
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        chunks.append(chunk)


def _reap(pid: int, deadline: float) -> int | None:
    """Wait for ``pid`` until ``deadline``, then kill it; its exit status, or None when
    another waiter (gevent's child watcher) reaped it first."""
    waitpid = unpatched("os", "waitpid")
    sleep = unpatched("time", "sleep")
    try:
        while True:
            done, raw_status = waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(raw_status)
            if time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                _, raw_status = waitpid(pid, 0)
                return os.waitstatus_to_exitcode(raw_status)
            sleep(0.01)
    except (ChildProcessError, ProcessLookupError):
        return None


def _llama_cpp_libraries() -> list[Path]:
    configured = os.environ.get("LLAMA_CPP_LIB_PATH")
    if configured:
        folder = Path(configured)
    else:
        spec = importlib.util.find_spec("llama_cpp")
        if spec is None or spec.origin is None:
            return []
        folder = Path(spec.origin).parent / "lib"
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [
        path
        for path in entries
        if path.is_file()
        and not path.is_symlink()
        and (".so" in path.suffixes or path.suffix in (".dylib", ".dll"))
    ]


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return line.partition(":")[2].strip()
    except OSError:  # not Linux
        pass
    return ""


def _read_verdicts(folder: Path) -> dict[str, object]:
    try:
        loaded = json.loads((folder / _VERDICTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _record(folder: Path, key: str, verdict: dict[str, object]) -> None:
    """Add ``verdict`` under ``key`` (re-reading the file: another process may have added
    one meanwhile) and replace the file whole."""
    scratch: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        verdicts = _read_verdicts(folder)
        verdicts[key] = {**verdict, "checked": int(time.time())}
        with tempfile.NamedTemporaryFile(
            "w", dir=folder, prefix=".verdicts-", delete=False, encoding="utf-8"
        ) as handle:
            scratch = Path(handle.name)
            json.dump(verdicts, handle, indent=1)
        os.replace(scratch, folder / _VERDICTS_FILE)
    except OSError as exc:  # a read-only home: try again next time
        log.debug("could not record the extra-buffer verdict in %s: %s", folder, exc)
        if scratch is not None:
            with contextlib.suppress(OSError):
                scratch.unlink()
