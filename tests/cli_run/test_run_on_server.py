"""``a3s-power run`` beside a running server: the server answers, as ``ollama run`` chats
through ``ollama serve``, and keeps the model loaded for the next run."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gguf
import pexpect
import pytest
import requests

from cli_run.test_run import GREEDY, MODEL, answer_of, ask, run, spawn_chat
from conftest import PowerServer, import_test_model, power_cli, real_model_path
from gguf_edits import copy_with_values

pytestmark = pytest.mark.model

#: the options GREEDY sets, as the API takes them
GREEDY_OPTIONS = {"temperature": 0, "num_predict": 16}


class _ServerAlone(PowerServer):
    """A server of its own, with the test model, that a test may kill."""

    def __init__(self, home: Path) -> None:
        super().__init__(home, num_ctx="2048")
        import_test_model(self.env)
        self.start()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def close(self) -> None:
        self.stop()


@pytest.fixture
def server(power_server: PowerServer) -> Iterator[PowerServer]:
    """The shared server (the CLI, given its environment, finds it and shares its store);
    the model's keep-alive, which a run may change, is the server's default after."""
    yield power_server
    requests.post(
        power_server.url + "/api/generate", json={"model": MODEL, "keep_alive": "10m"}, timeout=60
    )


def api_answer(server: PowerServer, messages: list[dict[str, str]]) -> str:
    reply = requests.post(
        server.url + "/api/chat",
        json={"model": MODEL, "messages": messages, "options": GREEDY_OPTIONS, "stream": False},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["message"]["content"]).strip()


def expiry(server: PowerServer, model: str = MODEL) -> datetime:
    """When the server will unload ``model``."""
    models: list[dict[str, Any]] = requests.get(server.url + "/api/ps", timeout=10).json()["models"]
    (loaded,) = [entry for entry in models if entry["name"] == model]
    return datetime.fromisoformat(loaded["expires_at"])


def test_a_prompt_is_answered_by_the_server_which_keeps_the_model(server: PowerServer) -> None:
    question = "Name a fruit."
    answered = answer_of(run(server.env, "run", MODEL, question, *GREEDY, "--keepalive", "2h"))
    # the run set the server's keep-alive (its default is 10 minutes): the server answered
    left = expiry(server) - datetime.now(UTC)
    assert timedelta(hours=1, minutes=50) < left <= timedelta(hours=2)
    assert answered == api_answer(server, [{"role": "user", "content": question}])


def test_a_negative_keepalive_is_a_value_as_in_ollama(server: PowerServer) -> None:
    # "--keepalive -1": the next word is the value, as Go's flag package reads it
    answer_of(run(server.env, "run", MODEL, "Hi", *GREEDY, "--keepalive", "-1"))
    assert expiry(server) - datetime.now(UTC) > timedelta(days=365)


def test_with_the_output_redirected_and_no_prompt_the_server_only_loads(
    server: PowerServer,
) -> None:
    # as `ollama run MODEL > file` with a terminal on stdin: no chat, the model loaded
    keyboard, terminal = os.openpty()
    try:
        result = run(server.env, "run", MODEL, "--keepalive", "2h", stdin=terminal)
    finally:
        os.close(keyboard)
        os.close(terminal)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert expiry(server) - datetime.now(UTC) > timedelta(hours=1, minutes=50)


def test_a_chat_on_the_server_sends_its_history(server: PowerServer) -> None:
    child = spawn_chat(server.env, MODEL, *GREEDY, "--keepalive", "2h")
    try:
        first = ask(child, "Name a fruit.")
        second = ask(child, "Name another.")
        # Ctrl-C while a long answer streams closes the server's stream; the chat goes on
        # without that turn
        story = "Tell me a very long story about a dragon."
        child.sendline("/set parameter num_predict 100000")
        child.expect_exact(">>> ")
        child.sendline(story)
        child.expect_exact(story + "\r\n")
        child.expect(r"\w+\W+\w+\W+\w+")  # words arrive while the story is being written
        child.sendintr()
        child.expect_exact(">>> ")
        child.sendline("/set parameter num_predict 16")
        child.expect_exact(">>> ")
        third = ask(child, "Name a third.")
        child.sendline("/bye")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert expiry(server) - datetime.now(UTC) > timedelta(hours=1, minutes=50)
    history = [{"role": "user", "content": "Name a fruit."}]
    assert first == api_answer(server, history)
    history.append({"role": "assistant", "content": first})
    history.append({"role": "user", "content": "Name another."})
    assert second == api_answer(server, history)
    history.append({"role": "assistant", "content": second})
    history.append({"role": "user", "content": "Name a third."})
    assert third == api_answer(server, history)


def refusals(server: PowerServer) -> int:
    """How many chats the server has refused (its log has a line for each request)."""
    return server.log().count("POST /api/chat 400")


def test_what_the_server_refuses_is_said_in_its_words(server: PowerServer) -> None:
    lookahead = '{"type": "object", "properties": {"a": {"type": "string", "pattern": "(?=a)"}}}'
    before = refusals(server)
    refused = run(server.env, "run", MODEL, "Hi", *GREEDY, "--format", lookahead)
    assert refusals(server) == before + 1
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert "uses a lookahead, which the output grammar cannot express" in refused.stderr


def test_an_embedding_model_s_vector_comes_from_the_server(
    server: PowerServer, tmp_path: Path
) -> None:
    values = {"llama.pooling_type": (1, gguf.GGUFValueType.UINT32)}  # mean pooling
    weights = copy_with_values(real_model_path(), tmp_path / "embedder.gguf", values)
    (tmp_path / "Modelfile").write_text(f"FROM {weights}\n", encoding="utf-8")
    power_cli(server.env, "create", "embedder-beside:latest", "-f", str(tmp_path / "Modelfile"))
    try:
        printed = run(server.env, "run", "embedder-beside", "The cat sat.", "--keepalive", "2h")
        assert printed.returncode == 0, printed.stderr
        left = expiry(server, "embedder-beside:latest") - datetime.now(UTC)
        assert timedelta(hours=1, minutes=50) < left <= timedelta(hours=2)
        vector = json.loads(printed.stdout)
        embedded = requests.post(
            server.url + "/api/embed",
            json={"model": "embedder-beside", "input": "The cat sat."},
            timeout=60,
        ).json()["embeddings"][0]
        assert len(vector) == len(embedded)
        assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(vector, embedded, strict=True))
    finally:
        power_cli(server.env, "rm", "embedder-beside")


def test_a_server_that_dies_mid_answer_ends_the_run_in_one_line(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(contextlib.closing(_ServerAlone(tmp_path / "home")))
        answering = subprocess.Popen(
            [sys.executable, "-m", "power_core.cli.application", "run", MODEL],
            env=server.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stack.callback(answering.kill)
        assert answering.stdin is not None and answering.stdout is not None
        answering.stdin.write("Write a very long story about a dragon.")
        answering.stdin.close()
        started = answering.stdout.read(40)  # the answer is streaming
        assert started
        server.kill()
        rest = answering.stdout.read()
        assert answering.stderr is not None
        errors = answering.stderr.read()
        answering.wait(timeout=120)
    assert answering.returncode == 1
    assert (started + rest).endswith("\n")  # the error's line is a line of its own
    assert errors.strip() == f"Error: the server at {server.url} closed the connection mid-answer"
