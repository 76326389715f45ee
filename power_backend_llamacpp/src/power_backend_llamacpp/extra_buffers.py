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
decodes a batch with them to the same logits as without. The verdict is kept per llama.cpp
library (its files' sizes and times) and CPU in ``~/.cache/a3s-power`` (``$XDG_CACHE_HOME``),
so each build is tried once.

``A3S_POWER_LLAMACPP_EXTRA_BUFFERS=1`` or ``=0`` decides without a trial.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from power_core.concurrency import allocate_native_lock, unpatched

log = logging.getLogger(__name__)

#: bump when the trial changes, so that earlier verdicts are not reused
_PROBE_VERSION = 1
#: a trial takes about 0.7 s here; one that hangs is counted as a failure
_PROBE_TIMEOUT = 120.0
_VERDICTS_FILE = "llamacpp-extra-buffers.json"
#: what the child prints after comparing the logits (its exit status may be lost: a server
#: under gevent can reap children before we wait for them)
_SAME = b"extra-buffers: same"

_lock = allocate_native_lock()
_decided: bool | None = None


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
            _decided = extra_buffers_work(verdicts_folder())
        return _decided


def cpu_has_amx() -> bool:
    """Whether this CPU announces AMX tiles (Linux only)."""
    return "amx_tile" in _cpu_flags().split()


def verdicts_folder() -> Path:
    """``$XDG_CACHE_HOME/a3s-power``, else ``~/.cache/a3s-power``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "a3s-power"


def extra_buffers_work(folder: Path) -> bool:
    """The recorded verdict for this llama.cpp build and CPU, else a trial's (recorded)."""
    key = build_key()
    verdicts = _read_verdicts(folder)
    recorded = verdicts.get(key)
    if isinstance(recorded, dict) and isinstance(recorded.get("works"), bool):
        return bool(recorded["works"])
    works, detail = run_probe()
    if not works:
        log.warning(
            "llama.cpp's AMX kernels failed a trial run (%s); weights stay in plain buffers, "
            "which decode about half as fast on this CPU. A llama.cpp built by GCC 12 faults "
            'in them: rebuild llama-cpp-python with CMAKE_ARGS="-DCMAKE_CXX_FLAGS=-fno-dse" '
            "(python3 dev.py does)",
            detail,
        )
    verdicts[key] = {"works": works, "detail": detail, "checked": int(time.time())}
    _write_verdicts(folder, verdicts)
    return works


def build_key() -> str:
    """Identifies the installed llama.cpp libraries (paths, sizes, times) and the CPU."""
    digest = hashlib.sha256(f"probe {_PROBE_VERSION}\n{_cpu_flags()}\n".encode())
    for library in _llama_cpp_libraries():
        stat = library.stat()
        digest.update(f"{library}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def run_probe(
    command: list[str] | None = None, timeout: float = _PROBE_TIMEOUT
) -> tuple[bool, str]:
    """Run the trial (``command`` plus a scratch folder) in a child; returns whether it
    passed and what happened."""
    argv = command or [sys.executable, "-m", "power_backend_llamacpp.extra_buffers_probe"]
    with tempfile.TemporaryDirectory(prefix="a3s-power-probe-") as folder:
        output, status = _run_child([*argv, folder], timeout)
    if _SAME in output.splitlines():
        return True, "same logits with and without them"
    if status is not None and status < 0:
        return False, f"the trial process died of signal {-status}"
    tail = output[-300:].decode("utf-8", errors="replace").strip()
    return False, f"the trial process exited with status {status}: {tail or 'no output'}"


def _run_child(argv: list[str], timeout: float) -> tuple[bytes, int | None]:
    """Spawn ``argv`` with stdout and stderr on a pipe; read until it closes; returns the
    output and the exit status (negative: a signal), or None where it could not be had.

    Uses the original ``os`` and ``select`` functions: this runs on a native thread of a
    server that gevent has patched."""
    select = unpatched("select", "select")
    spawn = unpatched("os", "posix_spawn")  # gevent's would watch the child from its hub
    waitpid = unpatched("os", "waitpid")
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
        )
    finally:
        os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select([read_end], [], [], max(remaining, 0))
            if not ready:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    try:
        _, raw_status = waitpid(pid, 0)
    except ChildProcessError:  # reaped by someone else (gevent's child watcher)
        return b"".join(chunks), None
    return b"".join(chunks), os.waitstatus_to_exitcode(raw_status)


def _llama_cpp_libraries() -> list[Path]:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return []
    package = Path(spec.origin).parent
    return sorted(
        path
        for path in package.rglob("*")
        if path.is_file() and (".so" in path.suffixes or path.suffix in (".dylib", ".dll"))
    )


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
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _write_verdicts(folder: Path, verdicts: dict[str, object]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=folder, prefix=".verdicts-", delete=False, encoding="utf-8"
        ) as handle:
            scratch = Path(handle.name)
            json.dump(verdicts, handle, indent=1)
        os.replace(scratch, folder / _VERDICTS_FILE)
    except OSError as exc:  # a read-only home: try again next time
        log.debug("could not record the extra-buffer verdict in %s: %s", folder, exc)
