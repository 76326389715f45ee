"""Run Claude Code, unchanged, against an A3S Power server, and check that every request it
sends is answered (a check by hand, not part of the test suite: it needs Node.js and npm).

    .venv/bin/python power_api_anthropic/claude_code_check.py [--model PATH]

It installs ``@anthropic-ai/claude-code`` (the version below) into
``~/.cache/a3s-power/peers/claude-code``, starts a server on a free port in a temporary
home, creates ``smoltools`` from the SmolLM2 GGUF with a ChatML Go template that shows
tools (Claude Code always sends tools; SmolLM2's own template shows none, so it would be a
400 "does not support tools", as in Ollama) and an 8192-token context, runs ``claude -p``
with the model, and fails unless Claude Code exits 0 and the server answered every
``/v1/messages`` request with 200. A 135M model's answer to Claude Code's prompt is
nonsense; what is checked is the protocol.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.332"
PEERS = Path.home() / ".cache" / "a3s-power" / "peers" / "claude-code"
MODEL = Path.home() / ".cache" / "a3s-power" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
TEMPLATE = (
    "{{- if or .System .Tools }}<|im_start|>system\n{{ .System }}{{ if .Tools }}\n"
    "Tools: {{ range .Tools }}{{ .Function.Name }} {{ end }}{{ end }}<|im_end|>\n{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    args = parser.parse_args()
    claude = PEERS / "node_modules" / ".bin" / "claude"
    if not claude.exists():
        PEERS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", CLAUDE_CODE],
            cwd=PEERS,
            check=True,
        )
    cli = [sys.executable, "-m", "power_core.cli.application"]
    with tempfile.TemporaryDirectory() as home:
        port = _free_port()
        env = {**os.environ, "A3S_POWER_HOME": home, "A3S_POWER_PORT": str(port)}
        modelfile = Path(home) / "Modelfile"
        modelfile.write_text(
            f'FROM {args.model}\nTEMPLATE """{TEMPLATE}"""\n'
            "PARAMETER num_ctx 8192\nPARAMETER stop <|im_end|>\n"
        )
        subprocess.run([*cli, "create", "smoltools", "-f", str(modelfile)], env=env, check=True)
        log_path = Path(home) / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen([*cli, "serve"], env=env, stdout=log, stderr=log)
        try:
            _wait_for(port)
            claude_env = {
                **env,
                "HOME": home,
                "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
                "ANTHROPIC_AUTH_TOKEN": "unused",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_TELEMETRY": "1",
                "ANTHROPIC_SMALL_FAST_MODEL": "smoltools",
                "ANTHROPIC_DEFAULT_HAIKU_MODEL": "smoltools",
            }
            started = time.monotonic()
            ran = subprocess.run(
                [str(claude), "-p", "Say hello.", "--model", "smoltools", "--max-turns", "2"],
                env=claude_env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=600,
            )
            took = time.monotonic() - started
        finally:
            server.terminate()
            server.wait()
        statuses = re.findall(r"POST /v1/messages (\d{3})", log_path.read_text())
    print(f"claude -p exited {ran.returncode} after {took:.0f} s; /v1/messages: {statuses}")
    print(ran.stdout.strip()[-400:] or ran.stderr.strip()[-400:])
    ok = ran.returncode == 0 and statuses and set(statuses) == {"200"}
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


if __name__ == "__main__":
    sys.exit(main())
