"""pull, create, list/ls, show, cp, delete/rm through the real console application."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cleo.io.buffered_io import BufferedIO

from power_core.cli.commands.models import MODEL_COMMANDS
from power_core.cli.commands.progress import ProgressPrinter
from power_core.modelfile import parse_modelfile
from power_core.sources import PullProgress
from registry_server import RegistryServer

Run = Callable[..., tuple[int, str, str]]


def create(run: Run, tmp_path: Path, name: str, text: str) -> tuple[int, str, str]:
    modelfile = tmp_path / f"Modelfile.{abs(hash((name, text)))}"
    modelfile.write_text(text)
    return run(f"create {name} -f {modelfile}")


def test_commands_are_exported() -> None:
    assert [c.name for c in MODEL_COMMANDS] == [
        *("pull", "push", "create", "list", "show", "delete", "cp"),
    ]


def test_empty_list(run: Run) -> None:
    status, out, _ = run("list")
    assert status == 0
    assert out.split() == ["NAME", "ID", "SIZE", "MODIFIED"]


def test_create_takes_q_for_quantize_as_ollama_and_only_quiet_silences(
    run: Run, tmp_path: Path, tiny_gguf: Path
) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {tiny_gguf}\n")
    status, out, err = run(f"create tiny:q -f {modelfile} -q q5_K_M")
    assert status == 1 and out == ""
    assert "unsupported quantization type Q5_K_M - supported types are F32, F16, BF16" in err
    status, out, err = run(f"create tiny:q -f {modelfile} --quantize q8_0")  # Q8_0 already
    assert status == 1
    assert "quantization is only supported for F16, BF16 and F32 models" in err
    status, out, err = run(f"create tiny:q -f {modelfile} --quiet")
    assert (status, out, err) == (0, "", "")
    assert run("list --quiet")[1] == ""
    assert "tiny:q" in run("list")[1]


def test_create_list_show_copy_delete(run: Run, tmp_path: Path, tiny_gguf: Path) -> None:
    status, out, err = create(
        run,
        tmp_path,
        "tiny:1b",
        f"FROM {tiny_gguf}\nPARAMETER temperature 0.3\nPARAMETER stop <|im_end|>\n"
        "SYSTEM Be brief.\nLICENSE MIT\n",
    )
    assert status == 0, err
    assert out.splitlines()[0] == "parsing modelfile"
    assert "transferring model data 100%" in out
    assert out.splitlines()[-2:] == ["writing manifest", "success"]

    for command in ("list", "ls"):
        status, out, _ = run(command)
        assert status == 0
        header, row = out.splitlines()
        assert header.split() == ["NAME", "ID", "SIZE", "MODIFIED"]
        assert re.fullmatch(r"tiny:1b\s+[0-9a-f]{12}\s+\d+(\.\d)? KB\s+.*ago", row), row

    status, out, _ = run("show tiny:1b")
    assert status == 0
    assert re.search(r"architecture\s+llama", out)
    assert re.search(r"quantization\s+Q8_0", out)
    assert re.search(r"context length\s+1024", out)
    assert "Capabilities" in out and "completion" in out
    assert "Be brief." in out

    status, out, _ = run("show tiny:1b --modelfile")
    parsed = parse_modelfile(out)
    assert parsed.system == "Be brief." and parsed.licenses == ["MIT"]
    assert parsed.parameters == {"temperature": 0.3, "stop": ["<|im_end|>"]}
    assert Path(parsed.from_).is_file()
    assert run("show tiny:1b --template")[1].startswith("{% for message in messages %}")
    assert run("show tiny:1b --parameters")[1].splitlines() == [
        'stop                           "<|im_end|>"',
        "temperature                    0.3",
    ]
    assert run("show tiny:1b --system")[1] == "Be brief.\n"
    assert run("show tiny:1b --license")[1] == "MIT\n"
    body = json.loads(run("show tiny:1b --json")[1])
    assert body["details"]["quantization_level"] == "Q8_0"
    assert body["model_info"]["tokenizer.ggml.tokens"] is None
    assert body["capabilities"] == ["completion"]
    verbose = json.loads(run("show tiny:1b --json -v")[1])
    assert len(verbose["model_info"]["tokenizer.ggml.tokens"]) == 300

    status, out, _ = run("cp tiny:1b team/copy")
    assert (status, out) == (0, "copied 'tiny:1b' to 'team/copy:latest'\n")
    names = [line.split()[0] for line in run("list")[1].splitlines()[1:]]
    assert sorted(names) == ["team/copy:latest", "tiny:1b"]
    # as `ollama ls PREFIX`: the names that start with it, in any case
    for prefix, listed in (("TEAM", ["team/copy:latest"]), ("ti", ["tiny:1b"]), ("x", [])):
        status, out, _ = run(f"list {prefix}")
        assert status == 0 and [line.split()[0] for line in out.splitlines()[1:]] == listed

    status, out, err = run("rm tiny:1b ghost team/copy")
    assert status == 1
    assert out.splitlines() == ["deleted 'tiny:1b'", "deleted 'team/copy'"]
    assert "Error: model 'ghost' not found" in err
    assert run("list")[1].splitlines()[1:] == []
    blobs = Path(tmp_path / "home" / "models" / "blobs")
    assert list(blobs.iterdir()) == []


def test_create_without_a_modelfile_takes_the_folder_s_gguf_as_ollama_does(
    run: Run, tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copyfile(tiny_gguf, folder / "model.gguf")
    monkeypatch.chdir(folder)
    status, out, err = run("create fromdir")
    assert status == 0, err
    assert out.splitlines()[-1] == "success"
    assert "fromdir:latest" in run("list")[1]
    # a Modelfile there is read, as before
    (folder / "Modelfile").write_text("FROM ./model.gguf\nSYSTEM Be brief.\n")
    assert run("create withfile")[0] == 0
    assert run("show withfile --system")[1] == "Be brief.\n"


def test_show_summarises_as_ollama_show_does(run: Run, tmp_path: Path, tiny_gguf: Path) -> None:
    system = "\nFirst line.\n\n  Second line.\nThird line.\n"
    status, _, err = create(
        run, tmp_path, "tiny:s", f'FROM {tiny_gguf}\nSYSTEM """{system}"""\nLICENSE MIT\n'
    )
    assert status == 0, err
    out = run("show tiny:s")[1]
    sections = [
        line.strip()
        for line in out.splitlines()
        if line.startswith("  ") and not line.startswith("    ")
    ]
    assert sections == ["Model", "Capabilities", "System", "License"]
    # the first two lines that hold something, then "...", as `ollama show` summarises
    assert "  System\n    First line.\n    Second line.\n    ...\n" in out
    assert "Metadata" not in out
    verbose = run("show tiny:s -v")[1]
    assert "  Metadata" in verbose and "  Tensors" in verbose
    assert re.search(r"tokenizer\.ggml\.tokens\s+\[t0 t1 \.\.\.\+298 more\]", verbose), verbose
    assert re.search(r"token_embd\.weight\s+F32\s+\[32, 8\]", verbose), verbose


def test_clear_errors(run: Run, tmp_path: Path, tiny_gguf: Path) -> None:
    status, _, err = run("show ghost")
    assert status == 1 and err.strip() == "Error: model 'ghost' not found"
    status, _, err = run(f"create x -f {tmp_path / 'nope'}")
    assert status == 1 and "cannot read Modelfile" in err
    status, _, err = create(run, tmp_path, "x", f"FROM {tiny_gguf}\nPARAMETER top_k many\n")
    assert status == 1 and "line 2: parameter 'top_k' must be an integer" in err
    status, _, err = create(run, tmp_path, "x", "FROM ./missing.gguf\n")
    assert status == 1 and "FROM file not found" in err
    status, _, err = create(run, tmp_path, "bad..name", f"FROM {tiny_gguf}\n")
    assert status == 1 and "invalid model name" in err
    status, _, err = run("show x --system --license")
    assert status == 1 and "choose only one" in err
    status, _, err = run("pull 127.0.0.1:9/library/none")  # a registry nobody runs
    assert status == 1 and "cannot pull" in err
    status, _, err = run("cp ghost other")
    assert status == 1 and "not found" in err
    status, _, err = create(run, tmp_path, "x", f"FROM {tiny_gguf}\0\n")
    assert status == 1 and err.strip() == "Error: the Modelfile contains a NUL character"


def test_a_store_the_machine_refuses_is_one_clear_error(
    run: Run, home: Path, tmp_path: Path, tiny_gguf: Path
) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(f"models_dir: {not_a_folder}\n")
    status, _, err = create(run, tmp_path, "x", f"FROM {tiny_gguf}\n")
    assert status == 1
    assert err.startswith("Error: the model store cannot be used: [Errno")
    assert str(not_a_folder) in err
    assert "Traceback" not in err


def test_pull_over_http(run: Run, served_folder: tuple[Path, str], tiny_gguf: Path) -> None:
    folder, base = served_folder
    shutil.copy(tiny_gguf, folder / "Tiny.Q8_0.gguf")
    status, out, err = run(f"pull {base}/Tiny.Q8_0.gguf")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "pulling manifest"
    assert "pulling Tiny.Q8_0.gguf 100%" in out
    assert "verifying sha256 digest" in lines
    assert lines[-2:] == ["success", "pulled tiny:q8_0"]
    assert run("list")[1].splitlines()[1].startswith("tiny:q8_0 ")

    status, _, err = run(f"pull {base}/Tiny.Q8_0.gguf --name other --digest sha256:{'0' * 64}")
    assert status == 1 and "expected sha256:" + "0" * 64 in err
    status, _, err = run(f"pull {base}/absent.gguf")
    assert status == 1 and "HTTP 404" in err
    status, _, err = run(f"pull {base}/Tiny.Q8_0.gguf --digest sha256:xyz")
    assert status == 1 and "invalid digest" in err


def test_pull_by_name_from_a_registry(run: Run, tiny_gguf: Path) -> None:
    registry = RegistryServer()
    try:
        registry.add_model("tiny", "1b", tiny_gguf.read_bytes(), {"system": b"Be brief."})
        name = registry.name("tiny", "1b")
        status, out, err = run(f"pull {name}")
        assert status == 0, err
        assert out.splitlines()[-2:] == ["success", f"pulled {name}"]
        status, out, _ = run(f"show {name} --system")
        assert status == 0 and out.strip() == "Be brief."
        status, _, err = run(f"pull {registry.name('tiny', 'missing')}")
        assert status == 1 and "not found" in err
    finally:
        registry.close()
    lan = RegistryServer("127.0.0.2")  # plain HTTP on a host that is not localhost
    try:
        lan.add_model("tiny", "lan", tiny_gguf.read_bytes())
        status, _, err = run(f"pull {lan.name('tiny', 'lan')}")
        assert status == 1 and "cannot pull" in err
        status, out, err = run(f"pull --insecure {lan.name('tiny', 'lan')}")
        assert status == 0 and out.splitlines()[-1] == f"pulled {lan.name('tiny', 'lan')}", err
    finally:
        lan.close()


def test_push_to_a_registry(run: Run, tmp_path: Path, tiny_gguf: Path) -> None:
    lan = RegistryServer("127.0.0.2")  # plain HTTP on a host that is not localhost
    try:
        name = lan.name("tiny", "v1", namespace="me")
        create(run, tmp_path, name, f"FROM {tiny_gguf}\nSYSTEM Be brief.\n")
        status, _, err = run(f"push {name}")
        assert status == 1 and "cannot push" in err and lan.manifests == {}
        status, out, err = run(f"push --insecure {name}")
        assert status == 0, err
        assert out.splitlines()[-3:] == ["pushing manifest", "success", f"pushed {name}"]
        assert ("me", "tiny", "v1") in lan.manifests
        status, _, err = run(f"push --insecure {lan.name('absent', 'v1', namespace='me')}")
        assert status == 1 and "not found" in err
    finally:
        lan.close()


def test_key_shows_the_same_public_key_and_never_replaces_a_bad_one(run: Run, home: Path) -> None:
    status, out, err = run("key")
    assert status == 0, err
    assert out.startswith("ssh-ed25519 ") and len(out.splitlines()) == 1
    assert str(home / "id_ed25519") in err
    assert (home / "id_ed25519.pub").read_text() == out
    # the page `ollama signin` opens: the key, base64url of its line, and this machine
    connect = next(w for w in err.split() if w.startswith("https://ollama.com/connect?"))
    query = parse_qs(urlsplit(connect).query)
    assert query["name"] == [socket.gethostname()]
    assert base64.urlsafe_b64decode(query["key"][0] + "==").decode() == out.strip()
    assert run("key")[1] == out  # made once, then read

    (home / "id_ed25519").write_text("not a key\n")
    status, out, err = run("key")
    assert (status, out) == (1, "")
    assert "cannot use the registry key" in err and "move it away" in err
    assert (home / "id_ed25519").read_text() == "not a key\n"


def test_progress_on_a_terminal_draws_one_line() -> None:
    io = BufferedIO()
    printer = ProgressPrinter(io, terminal=True)
    printer(PullProgress("pulling manifest"))
    for done in (0, 1 << 20, 2 << 20, 3 << 20):
        printer(PullProgress("pulling abc", total=3 << 20, completed=done))
    printer(PullProgress("verifying sha256 digest"))
    printer.finish()
    out = io.fetch_output()
    assert out.startswith("pulling manifest\n")
    assert "\r" in out and "100% ▕" in out and "3.1 MB/3.1 MB" in out  # 3 MiB, as Ollama
    assert out.endswith("verifying sha256 digest\n")


def test_list_does_not_import_the_server_or_the_engine(home: Path) -> None:
    probe = (
        "import sys\n"
        "sys.argv = ['a3s-power', 'list']\n"
        "from power_core.cli.application import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "heavy = {'flask', 'gevent', 'llama_cpp', 'werkzeug', 'requests', 'jinja2',\n"
        "         'cryptography', 'PIL', 'pypdf'}\n"
        "print('IMPORTED', sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "A3S_POWER_HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "IMPORTED []"
    assert result.stdout.splitlines()[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]


def test_ctrl_c_during_a_pull_exits_130_and_stores_nothing(tmp_path: Path) -> None:
    # a server that sends the headers and 10 of 100,000 bytes, then stalls
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def stall() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"GGUF\x03\x00\x00\x00\x00\x00"
        )
        time.sleep(30)
        connection.close()

    threading.Thread(target=stall, daemon=True).start()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("A3S_POWER_")}
    env["A3S_POWER_HOME"] = str(home)
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "power_core.cli.application",
            "pull",
            f"http://127.0.0.1:{port}/m.gguf",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert b"pulling" in child.stdout.readline()  # the download has begun
    child.send_signal(signal.SIGINT)
    child.communicate(timeout=60)
    listener.close()
    assert child.returncode == 130
    manifests = home / "models" / "manifests"
    assert not manifests.exists() or not any(p.is_file() for p in manifests.rglob("*"))


def test_show_prints_a_models_projector_as_ollama_show_does(
    run: Run, tmp_path: Path, tiny_gguf: Path
) -> None:
    from tiny_projector import write_tiny_projector

    projector = write_tiny_projector(tmp_path / "mmproj.gguf", text_embedding_length=32)
    status, _, err = create(run, tmp_path, "seeing", f"FROM {tiny_gguf}\nFROM {projector}\n")
    assert status == 0, err
    status, out, _ = run("show seeing")
    assert status == 0
    section = out.split("  Projector\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in section] == [
        "architecture",
        "parameters",
        "embedding",
        "dimensions",
    ]
    assert section[0].split()[-1] == "clip" and section[-1].split()[-1] == "32"
    assert "vision" in out.split("  Capabilities\n")[1]
    status, out, _ = run("show seeing --json")
    assert json.loads(out)["projector_info"]["clip.projector_type"] == "mlp"
    status, out, _ = run("show seeing --modelfile")
    assert out.count("\nFROM ") == 2
    assert create(run, tmp_path, "blind", f"FROM {tiny_gguf}\n")[0] == 0
    assert "Projector" not in run("show blind")[1]
