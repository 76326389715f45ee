"""``a3s-power run`` as a user meets it: real subprocesses, a real terminal, the real SmolLM2."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import pexpect
import pytest

from conftest import import_test_model, power_cli, power_env, real_model_path
from gguf_edits import copy_with_values
from registry_server import RegistryServer

MODEL = "smollm2:135m"
#: greedy and short, so the same prompt always gives the same answer
GREEDY = ["--parameter", "temperature=0", "--parameter", "num_predict=16"]
TWO_LINES = "What is 2+2?\nAnswer briefly."
TIMEOUT = 180  # generous bounds for a loaded 2-core machine; not timing assertions


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("run-home")
    # a port held, never listened on, so no server can answer there: the model runs in
    # the CLI's process
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = str(held.getsockname()[1])
        # one thread: llama.cpp's spinning workers slow down many times over on a busy
        # machine
        environment = power_env(home, num_thread="1", port=port)
        import_test_model(environment)
        yield environment


def run(env: dict[str, str], *args: str, stdin: str | int = "") -> subprocess.CompletedProcess[str]:
    """``a3s-power ARGS`` with ``stdin`` piped in (so never a terminal), or read from the
    descriptor ``stdin`` (a terminal's, say); the output is piped either way."""
    given: dict[str, Any] = {"stdin": stdin} if isinstance(stdin, int) else {"input": stdin}
    return subprocess.run(
        [sys.executable, "-m", "power_core.cli.application", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        **given,
    )


def answer_of(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip(), "the model answered nothing"
    return result.stdout.strip()


# ----------------------------------------------------------------------------- one-shot
def test_prompt_option_words_and_stdin_all_give_the_same_answer(env: dict[str, str]) -> None:
    by_option = answer_of(run(env, "run", MODEL, "--prompt", "Name a fruit.", *GREEDY))
    by_words = answer_of(run(env, "run", MODEL, "Name", "a", "fruit.", *GREEDY))
    by_stdin = answer_of(run(env, "run", MODEL, *GREEDY, stdin="Name a fruit."))
    assert by_option == by_words == by_stdin


def test_verbose_reports_timings_and_token_counts(env: dict[str, str]) -> None:
    result = run(env, "run", MODEL, "--prompt", "Hi", *GREEDY, "--verbose")
    answer_of(result)
    stats = dict(line.split(":", 1) for line in result.stderr.splitlines() if ":" in line)
    for label in (
        "total duration",
        "load duration",
        "prompt eval count",
        "prompt eval duration",
        "prompt eval rate",
        "eval count",
        "eval duration",
        "eval rate",
    ):
        assert label in stats, result.stderr
    assert 0 < int(stats["eval count"].split()[0]) <= 16
    assert int(stats["prompt eval count"].split()[0]) > 0
    assert stats["eval rate"].strip().endswith("tokens/s")


def test_format_json_schema_constrains_the_answer(env: dict[str, str]) -> None:
    schema = {
        "type": "object",
        "properties": {"color": {"enum": ["red", "green", "blue"]}},
        "required": ["color"],
        "additionalProperties": False,
    }
    result = run(env, "run", MODEL, "--format", json.dumps(schema), *GREEDY, "Pick a color.")
    assert json.loads(answer_of(result))["color"] in {"red", "green", "blue"}


#: ends the prompt inside an opened <think> block, so everything generated is reasoning
THINKING_MODELFILE = """FROM smollm2:135m
TEMPLATE \"\"\"{% for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}<|im_start|>assistant
<think>
\"\"\"
PARAMETER temperature 0
PARAMETER num_predict 12
"""


def test_think_shows_reasoning_apart_and_hidethinking_hides_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(THINKING_MODELFILE, encoding="utf-8")
    power_cli(env, "create", "thinker", "-f", str(modelfile))
    question = "Why is the sky blue?"

    # as `ollama run`: a model that thinks shows its reasoning apart unless told otherwise
    shown = answer_of(run(env, "run", "thinker", question))
    lines = shown.splitlines()
    assert lines[0] == "Thinking..." and lines[-1] == "...done thinking." and lines[1], shown
    # --think alone takes no word of the prompt as its value; =true and a level say the same
    for flag in ("--think", "--think=true", "--think=high"):
        assert answer_of(run(env, "run", "thinker", flag, question)) == shown
    for flag in ("--think=false", "--hidethinking"):  # not asked for / not shown
        hidden = run(env, "run", "thinker", flag, question)
        assert hidden.returncode == 0, hidden.stderr
        assert hidden.stdout.strip() == ""
    # a model that cannot think has no reasoning to hide: it answers, as in `ollama run`
    assert answer_of(run(env, "run", MODEL, "--hidethinking", "Hi", *GREEDY))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", MODEL, "--parameter", "temp=1", "hi"], "unknown parameter 'temp'"),
        (["run", MODEL, "--parameter", "top_k=many", "hi"], "'top_k' must be an integer"),
        (["run", MODEL, "--keepalive", "soon", "hi"], "--keepalive"),
        (["run", MODEL, "--format", "yaml", "hi"], "--format must be 'json'"),
        (["run", MODEL], "the prompt is empty"),
        # as the API answers 400; with a prompt or without (the chat), before loading
        (["run", MODEL, "--think", "hi"], '"smollm2:135m" does not support thinking'),
        (["run", MODEL, "--think"], '"smollm2:135m" does not support thinking'),
        (["run", MODEL, "--think=hard", "hi"], "invalid value for --think: 'hard'"),
    ],
)
def test_bad_input_is_one_clear_line(env: dict[str, str], args: list[str], message: str) -> None:
    result = run(env, *args)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_without_a_backend_it_names_the_package_to_install(env: dict[str, str]) -> None:
    no_backend = dict(env, A3S_POWER_DISABLE_PLUGINS="llamacpp")
    result = run(no_backend, "run", MODEL, "hi")
    assert result.returncode == 1
    assert "pip install a3s-power-llamacpp" in result.stderr
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- interactive
def spawn_chat(env: dict[str, str], *args: str, columns: int = 300) -> pexpect.spawn:
    """``a3s-power run ARGS`` in a pseudo-terminal of ``columns``, at its first ``>>>``
    prompt."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "power_core.cli.application", "run", *args],
        env=dict(env, TERM="dumb"),
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(40, columns),
    )
    child.expect_exact(">>> ")
    return child


@pytest.fixture
def chat(env: dict[str, str]) -> Iterator[pexpect.spawn]:
    """``a3s-power run MODEL`` in a pseudo-terminal, at its first ``>>>`` prompt."""
    child = spawn_chat(env, MODEL)
    yield child
    if child.isalive():
        child.terminate(force=True)


def ask(child: pexpect.spawn, *lines: str) -> str:
    """Type ``lines`` (more than one: a \"\"\" message) and return the answer printed."""
    for line in lines[:-1]:
        child.sendline(line)
        child.expect_exact("... ")
    child.sendline(lines[-1])
    child.expect_exact(lines[-1] + "\r\n")  # the terminal's echo of what was typed
    child.expect_exact("\r\n>>> ")
    return str(child.before).replace("\r\n", "\n").strip()


def command(child: pexpect.spawn, line: str) -> str:
    child.sendline(line)
    child.expect_exact(line + "\r\n")
    child.expect_exact(">>> ")
    return str(child.before).replace("\r\n", "\n")


def test_interactive_chat(chat: pexpect.spawn, env: dict[str, str]) -> None:
    # Ctrl-C at an empty prompt explains how to leave. A SIGINT that lands after readline
    # printed ">>> " but before it waits for input is only seen at the next key (CPython's
    # readline), so on a loaded machine the first one can go unanswered: send it again.
    for _ in range(10):
        chat.sendintr()
        if chat.expect_exact(["Use Ctrl + d or /bye to exit.", pexpect.TIMEOUT], timeout=5) == 0:
            break
    else:
        raise AssertionError("Ctrl-C at the prompt never printed the exit hint")
    chat.expect_exact(">>> ")

    assert "/set            Set session variables" in command(chat, "/?")
    assert "/show info" in command(chat, "/help show")
    assert "Unknown command '/nope'. Type /? for help" in command(chat, "/nope")

    assert "Set parameter 'temperature' to '0'" in command(chat, "/set parameter temperature 0")
    assert "Set parameter 'num_predict' to '16'" in command(chat, "/set parameter num_predict 16")
    assert "Couldn't set parameter: 'top_p' must be between 0 and 1" in command(
        chat, "/set parameter top_p 7"
    )
    assert "Set parameter 'num_gpu' to '0'" in command(chat, "/set parameter num_gpu 0")
    assert "Couldn't set parameter: 'main_gpu' must not be negative" in command(
        chat, "/set parameter main_gpu -1"
    )
    assert "Couldn't set parameter: 'use_mlock' must be true or false, got 'maybe'" in command(
        chat, "/set parameter use_mlock maybe"
    )
    assert "Couldn't set parameter: unknown parameter 'warmth'" in command(
        chat, "/set parameter warmth 3"
    )
    assert "num_ctx <int>" in command(chat, "/set parameter")
    shown = command(chat, "/show parameters")
    assert (
        "User defined parameters:\ntemperature     0\nnum_predict     16\nnum_gpu         0\n"
        in shown
    ), shown

    info = command(chat, "/show info")
    for expected in (
        "architecture        llama",
        "quantization        Q4_1",
        "context length      8192",
        "Capabilities",
        "completion",
    ):
        assert expected in info, info

    # a """ message reaches the model exactly as the same text given with --prompt
    first = ask(chat, '"""', "What is 2+2?", 'Answer briefly."""')
    reference = answer_of(run(env, "run", MODEL, "--prompt", TWO_LINES, *GREEDY))
    assert first == reference

    assert ask(chat, "And 3+3?")
    assert "Cleared session context" in command(chat, "/clear")
    # with the history gone, the same question gets the first answer again
    assert ask(chat, '"""', "What is 2+2?", 'Answer briefly."""') == first

    chat.sendline('/set system """You are a pirate.')
    chat.expect_exact("... ")
    assert "Set system message." in command(chat, 'Speak like one."""')
    assert "You are a pirate.\nSpeak like one.\n" in command(chat, "/show system")
    # as Ollama: nothing to set is the usage, and the system message stays
    assert "Usage:\n  /set system <message>" in command(chat, "/set system")
    assert "You are a pirate.\nSpeak like one.\n" in command(chat, "/show system")
    # a stop list set again is replaced, as Ollama's /set replaces it
    assert "Set parameter 'stop' to 'foo, bar'" in command(chat, "/set parameter stop foo bar")
    assert "Set parameter 'stop' to 'baz'" in command(chat, "/set parameter stop baz")
    assert "Set 'think' mode to 'high'." in command(chat, "/set think high")
    assert "Invalid think level 'hard'" in command(chat, "/set think hard")
    assert "Set 'nothink' mode." in command(chat, "/set nothink")
    assert "Set 'nohistory' mode." in command(chat, "/set nohistory")
    assert "Set 'nowordwrap' mode." in command(chat, "/set nowordwrap")
    command(chat, "/set parameter stop <|im_end|>")

    # Ctrl-C while a long answer streams stops it and returns to the prompt
    command(chat, "/set parameter num_predict 100000")
    story = "Tell me a very long story about a dragon."
    chat.sendline(story)
    chat.expect_exact(story + "\r\n")
    chat.expect(r"\w+\W+\w+\W+\w+")  # words arrive while the story is still being written
    chat.sendintr()
    chat.expect_exact(">>> ")

    command(chat, "/set parameter num_predict 8")
    assert ask(chat, "Hi")  # the model still answers after the interruption

    chat.sendline("/bye")
    chat.expect(pexpect.EOF)
    chat.close()
    assert chat.exitstatus == 0


def test_answers_are_wrapped_at_words_in_a_narrow_terminal(env: dict[str, str]) -> None:
    story = "Tell me a story about a dragon."
    args = ["--parameter", "temperature=0", "--parameter", "num_predict=60"]

    def answer_in(columns: int, *flags: str) -> str:
        child = spawn_chat(env, MODEL, *args, *flags, columns=columns)
        try:
            return ask(child, story)
        finally:
            child.terminate(force=True)

    whole = answer_in(40, "--nowordwrap")
    wrapped = answer_in(40)
    # no line past the edge (40 columns, 5 left free, as Ollama leaves them), and only
    # the line breaks differ: no word is cut
    assert len(whole.splitlines()) < len(wrapped.splitlines())
    assert max(len(line) for line in whole.splitlines()) > 35
    assert max(len(line) for line in wrapped.splitlines()) <= 35
    assert wrapped.split() == whole.split()


def test_an_answer_written_to_a_file_is_never_a_chat(env: dict[str, str]) -> None:
    # a terminal on stdin and the output redirected: no hidden ">>> " chat, as in Ollama
    keyboard, terminal = os.openpty()
    try:
        result = run(env, "run", MODEL, stdin=terminal)
    finally:
        os.close(keyboard)
        os.close(terminal)
    assert result.returncode == 1
    assert "the output is not a terminal" in result.stderr and result.stdout == ""


def test_a_chat_longer_than_the_context_goes_on(chat: pexpect.spawn) -> None:
    for setting in ("num_ctx 128", "num_predict 24", "temperature 0", "num_keep 8"):
        assert "Set parameter" in command(chat, f"/set parameter {setting}")
    # each turn adds about 50 tokens: by the third the history no longer fits 128
    for topic in ("the sea", "a mountain", "a forest", "the desert", "a river", "the moon"):
        answer = ask(chat, f"Describe {topic} in two short sentences, please.")
        assert answer and "num_ctx" not in answer, answer  # the 400 named num_ctx
    chat.sendline("/bye")
    chat.expect(pexpect.EOF)


def test_save_stores_the_session_and_load_brings_it_back(
    chat: pexpect.spawn, env: dict[str, str]
) -> None:
    for setting in ("temperature 0", "num_predict 16"):
        command(chat, f"/set parameter {setting}")
    command(chat, "/set system You answer in few words.")
    introduction = ask(chat, "My name is Ada and I like tea.")
    assert "Created new model 'ada-chat'" in command(chat, "/save ada-chat")

    assert "Usage:\n  /save <modelname>" in command(chat, "/save")
    assert "error: The model name 'no/../good' is invalid" in command(chat, "/save no/../good")
    listing = command(chat, "/list")
    assert "ada-chat:latest" in listing and MODEL in listing and "MODIFIED" in listing
    assert "error: model 'nope' not found" in command(chat, "/load nope")

    chat.sendline("/load ada-chat")
    chat.expect_exact("/load ada-chat\r\n")
    # the saved conversation is shown as it was typed and answered, then the prompt
    chat.expect_exact(introduction + "\r\n\r\n>>> ")
    loaded = str(chat.before).replace("\r\n", "\n")
    assert loaded == "Loading model 'ada-chat'\n>>> My name is Ada and I like tea.\n"
    modelfile = command(chat, "/show modelfile")
    for line in (
        'SYSTEM """You answer in few words."""',
        "PARAMETER temperature 0\n",
        "MESSAGE user",
    ):
        assert line in modelfile, modelfile
    # the next answer is the one the saved model gives anywhere: its system message,
    # parameters and conversation are stored (compared with a fresh process, as both read
    # the whole conversation afresh; the chat before /save had most of it cached, and
    # llama.cpp's sums then differ in the last bits)
    follow_up = ask(chat, "What do I like?")
    assert follow_up == answer_of(run(env, "run", "ada-chat", "--prompt", "What do I like?"))
    assert run(env, "rm", "ada-chat").returncode == 0
    # removed under the chat: a command that reads it says so, and the chat goes on
    assert "error: model 'ada-chat:latest' not found" in command(chat, "/show modelfile")
    chat.sendline("/bye")
    chat.expect(pexpect.EOF)
    chat.close()
    assert chat.exitstatus == 0


def test_ctrl_d_leaves_the_chat(chat: pexpect.spawn) -> None:
    chat.sendeof()
    chat.expect(pexpect.EOF)
    chat.close()
    assert chat.exitstatus == 0


def test_typed_bytes_that_are_not_utf8_under_a_strict_locale_are_asked(
    env: dict[str, str],
) -> None:
    # a strict stdin (as under en_US.UTF-8) made input() raise UnicodeDecodeError
    child = pexpect.spawn(
        sys.executable,
        ["-m", "power_core.cli.application", "run", MODEL, *GREEDY],
        env=dict(env, TERM="dumb", PYTHONIOENCODING="utf-8:strict"),
        timeout=TIMEOUT,
        dimensions=(40, 300),
    )
    try:
        child.expect_exact(b">>> ")
        child.send(b"Name a fruit \xff.\r")
        child.expect_exact(b"\r\n>>> ")
        assert b"Traceback" not in child.before and b"Error" not in child.before
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


# ----------------------------------------------------------------------------- pulling
def test_a_missing_model_is_pulled_first_then_answers(env: dict[str, str], tmp_path: Path) -> None:
    registry = RegistryServer()
    try:
        weights = real_model_path().read_bytes()
        registry.add_model("smollm2", "135m", weights, {"params": b'{"num_ctx":2048}'})
        name = registry.name("smollm2", "135m")
        pulled = run(env, "run", name, "--prompt", "Name a fruit.", *GREEDY)
        assert answer_of(pulled) == answer_of(run(env, "run", MODEL, "Name a fruit.", *GREEDY))
        assert "pulling manifest" in pulled.stderr and "success" in pulled.stderr
        # params and config: the weights are already stored (the imported smollm2:135m)
        assert registry.storage_gets() == 2
        again = run(env, "run", name, "--prompt", "Name a fruit.", *GREEDY)
        assert answer_of(again) and registry.storage_gets() == 2 and again.stderr == ""

        absent = run(env, "run", registry.name("no-such-model", "latest"), "hi")
        assert absent.returncode == 1 and absent.stdout == ""
        assert absent.stderr.strip().endswith("no-such-model:latest' not found"), absent.stderr
    finally:
        registry.close()


def test_bytes_that_are_not_utf8_are_read_as_replacement_characters(
    env: dict[str, str],
) -> None:
    # in an argument (Python keeps them as lone surrogates) and on stdin
    command = [sys.executable, "-m", "power_core.cli.application", "run", MODEL, *GREEDY]
    for extra, stdin in (([b"--prompt", b"Name a fruit. \xff\xfe"], b""), ([], b"Name \xff.")):
        result = subprocess.run(
            [part.encode() for part in command] + extra,
            env=env,
            input=stdin,
            capture_output=True,
            timeout=TIMEOUT,
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        assert result.stdout.strip()


def test_closed_stdin_without_a_prompt_is_one_clear_error(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "power_core.cli.application", "run", MODEL],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        preexec_fn=lambda: os.close(0),  # as a shell's <&- does
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: standard input is closed: give a prompt with --prompt or as words after "
        "the model name"
    )


def test_load_refuses_what_the_next_model_cannot_do(env: dict[str, str], tmp_path: Path) -> None:
    # a thinking model: SmolLM2 under a Go template that shows the messages' .Thinking
    template = (
        "{{ range .Messages }}<|im_start|>{{ .Role }}\\n{{ .Content }}<|im_end|>\\n{{ end }}"
        "{{ if .Think }}{{ .Thinking }}{{ end }}<|im_start|>assistant\\n"
    )
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f'FROM {MODEL}\nTEMPLATE "{template}"\n')
    created = run(env, "create", "thinker", "-f", str(modelfile))
    assert created.returncode == 0, created.stderr

    # thinking asked for: the next model cannot think, so it is not loaded, as in Ollama
    asked = spawn_chat(env, "thinker", "--think", *GREEDY)
    refused = command(asked, f"/load {MODEL}")
    assert f'error: "{MODEL}" does not support thinking' in refused, refused
    assert ask(asked, "Name a fruit.")  # the chat goes on with the model it had
    asked.sendline("/bye")
    asked.expect(pexpect.EOF)
    # only hidden: nothing to hide on the next model, which loads and answers
    hidden = spawn_chat(env, "thinker", "--hidethinking", *GREEDY)
    assert "error" not in command(hidden, f"/load {MODEL}")
    answer = ask(hidden, "Name a fruit.")
    assert answer and "does not support" not in answer, answer
    hidden.sendline("/bye")
    hidden.expect(pexpect.EOF)


def test_a_model_with_a_projector_reads_the_image_files_a_prompt_names(
    env: dict[str, str], tmp_path: Path
) -> None:
    from tiny_projector import tiny_png, write_tiny_projector

    projector = write_tiny_projector(tmp_path / "mmproj.gguf")
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {real_model_path()}\nFROM {projector}\n", encoding="utf-8")
    power_cli(env, "create", "seeing", "-f", str(modelfile))
    pictures = []
    for seed in (1, 2):
        picture = tmp_path / f"picture {seed}.png"
        picture.write_bytes(tiny_png(seed))
        pictures.append(picture)
    answers = []
    for picture in pictures:
        result = run(env, "run", "seeing", "--prompt", f"What is in '{picture}'?", *GREEDY)
        assert f"Added image '{picture}'" in result.stderr
        answers.append(answer_of(result))
    assert answers[0] != answers[1]
    # a model without a projector reads the path as text
    blind = run(env, "run", MODEL, "--prompt", f"What is in '{pictures[0]}'?", *GREEDY)
    assert "Added image" not in blind.stderr
    answer_of(blind)
    # in the chat, a message may start with the path, escaped as a terminal writes a
    # dropped file's: a message, not an unknown /command
    chat = spawn_chat(env, "seeing", *GREEDY)
    try:
        escaped = str(pictures[0]).replace(" ", "\\ ")
        said = command(chat, f"{escaped} what is this?")
        assert f"Added image '{pictures[0]}'" in said and "Unknown command" not in said
    finally:
        chat.terminate(force=True)


# ----------------------------------------------------------------------------- embedding models
@pytest.fixture(scope="module")
def embedder(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """SmolLM2 declaring mean pooling: an embedding model (no "completion" capability)."""
    folder = tmp_path_factory.mktemp("embedder")
    values = {"llama.pooling_type": (1, gguf.GGUFValueType.UINT32)}
    path = copy_with_values(real_model_path(), folder / "embedder.gguf", values)
    modelfile = folder / "Modelfile"
    modelfile.write_text(f"FROM {path}\n", encoding="utf-8")
    power_cli(env, "create", "embedder", "-f", str(modelfile))
    return "embedder"


def vector_of(result: subprocess.CompletedProcess[str]) -> list[float]:
    assert result.returncode == 0, result.stderr
    vector: list[float] = json.loads(result.stdout)
    assert math.isclose(sum(x * x for x in vector), 1.0, abs_tol=1e-6)
    return vector


def test_an_embedding_model_prints_the_prompt_s_vector_as_ollama_run_does(
    env: dict[str, str], embedder: str
) -> None:
    by_words = vector_of(run(env, "run", embedder, "The", "cat", "sat", "on", "the", "mat."))
    by_stdin = vector_of(run(env, "run", embedder, stdin="The cat sat on the mat."))
    assert len(by_words) == 576 and by_words == by_stdin
    near = vector_of(run(env, "run", embedder, "--prompt", "A cat was sitting on a rug."))
    far = vector_of(run(env, "run", embedder, "--prompt", "Stock prices fell sharply today."))

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(by_words, near) > cosine(by_words, far)
    cut = vector_of(
        run(env, "run", embedder, "--dimensions", "64", stdin="The cat sat on the mat.")
    )
    scale = math.sqrt(sum(x * x for x in by_words[:64]))
    assert cut == pytest.approx([x / scale for x in by_words[:64]], abs=1e-6)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        # the context holds 4,096 tokens
        (["--truncate", "false"], "word " * 5000, "shorten it or allow truncation"),
        (["--truncate", "maybe", "hi"], "", "--truncate must be true or false"),
        (["--dimensions", "many", "hi"], "", "--dimensions must be a whole number"),
    ],
)
def test_an_embedding_model_s_bad_input_is_one_clear_line(
    env: dict[str, str], embedder: str, args: list[str], stdin: str, message: str
) -> None:
    result = run(env, "run", embedder, *args, stdin=stdin)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_an_embedding_model_in_a_terminal_asks_for_text_not_a_chat(
    env: dict[str, str], embedder: str
) -> None:
    output, status = pexpect.run(
        f"{sys.executable} -m power_core.cli.application run {embedder}",
        env=env,
        timeout=TIMEOUT,
        withexitstatus=True,
        encoding="utf-8",
    )
    assert status != 0
    assert 'embedding models require input text. Usage: a3s-power run embedder "your' in output
    assert "Traceback" not in output
