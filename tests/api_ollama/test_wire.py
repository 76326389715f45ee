"""What the official client hides: framing, types, formats, status codes, HEAD routes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gguf
import pytest
import requests

from conftest import PowerServer, import_test_model, power_cli

MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "num_predict": 8}
GREEDY_200 = {"temperature": 0, "num_predict": 200}
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d)$")
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def _check_final(final: dict[str, Any]) -> None:
    assert final["done"] is True
    assert final["done_reason"] in ("stop", "length")
    for key in (*DURATIONS, "prompt_eval_count", "eval_count"):
        assert type(final[key]) is int and final[key] >= 0, key
    assert final["total_duration"] >= final["eval_duration"]
    assert final["eval_count"] > 0


def test_generate_stream_is_ndjson_one_object_per_token(url: str, post_ndjson: Any) -> None:
    response, lines = post_ndjson(
        url + "/api/generate", {"model": MODEL, "prompt": "Count: 1, 2,", "options": GREEDY}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert len(lines) >= 3
    for line in lines:
        assert line["model"] == MODEL
        assert RFC3339_NANO.match(line["created_at"]), line["created_at"]
        assert isinstance(line["response"], str)
    assert all(line["done"] is False for line in lines[:-1])
    _check_final(lines[-1])
    assert lines[-1]["response"] == ""
    assert all(isinstance(t, int) for t in lines[-1]["context"])


def test_chat_stream_and_single_answer(url: str, post_ndjson: Any) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "options": GREEDY}
    response, lines = post_ndjson(url + "/api/chat", body)
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert all(line["message"]["role"] == "assistant" for line in lines)
    _check_final(lines[-1])

    single = requests.post(url + "/api/chat", json={**body, "stream": False}, timeout=120)
    assert single.headers["Content-Type"].startswith("application/json")
    answer = single.json()
    _check_final(answer)
    assert answer["message"]["content"]
    assert RFC3339_NANO.match(answer["created_at"])


def test_version_is_an_ollama_release_that_clients_accept(url: str) -> None:
    version = requests.get(url + "/api/version", timeout=10).json()["version"]
    # VS Code's Copilot compares each number and refuses an Ollama older than 0.6.4, OpenAI's
    # Codex CLI one older than 0.13.4
    assert tuple(int(part) for part in version.split(".")) >= (0, 13, 4), version


def test_version_and_head_routes(url: str) -> None:
    assert isinstance(requests.get(url + "/api/version", timeout=10).json()["version"], str)
    for path in ("/", "/api/version", "/api/tags"):
        head = requests.head(url + path, timeout=10)
        assert head.status_code == 200, path
        assert head.content == b""
    tags = requests.get(url + "/api/tags", timeout=10).json()["models"]
    for entry in tags:
        assert RFC3339_NANO.match(entry["modified_at"])
        assert type(entry["size"]) is int


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/api/generate", b"{not json", 400, "not valid JSON"),
        ("/api/generate", b"[1, 2]", 400, "JSON object"),
        ("/api/generate", b"", 400, "empty"),
        ("/api/generate", b'{"prompt": "hi"}', 400, "model is required"),
        ("/api/chat", b'{"messages": []}', 400, "model is required"),
        ("/api/embed", b'{"input": "x"}', 400, "model is required"),
        ("/api/show", b"{}", 400, "model is required"),
        (
            "/api/generate",
            b'{"model": "no-such:1", "prompt": "hi"}',
            404,
            "model 'no-such:1' not found",
        ),
        (
            "/api/chat",
            b'{"model": "no-such:1", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "not found",
        ),
        ("/api/embed", b'{"model": "no-such:1", "input": "x"}', 404, "not found"),
        (
            "/api/generate",
            b'{"model": "smollm2:135m", "prompt": "hi", "options": {"temperature": "hot"}}',
            400,
            "temperature",
        ),
        (
            "/api/generate",
            b'{"model": "smollm2:135m", "prompt": "hi", "options": {"num_ctx": 1.5}}',
            400,
            "num_ctx",
        ),
        (
            "/api/chat",
            b'{"model": "smollm2:135m", "messages": [], "options": {"stop": 3}}',
            400,
            "stop",
        ),
        (
            "/api/generate",
            b'{"model": "smollm2:135m", "prompt": "hi", "keep_alive": "soon"}',
            400,
            "keep_alive",
        ),
        (
            "/api/generate",
            b'{"model": "smollm2:135m", "prompt": "hi", "format": "yaml"}',
            400,
            "format",
        ),
        (
            # the schema converter used to answer: 'int' object has no attribute 'items'
            "/api/generate",
            b'{"model": "smollm2:135m", "prompt": "hi",'
            b' "format": {"type": "object", "properties": 5}}',
            400,
            "the JSON schema's 'properties' at # must be an object, not a number",
        ),
        (
            "/api/chat",
            b'{"model": "smollm2:135m", "messages": [{"role": "user", "content": "x"}],'
            b' "format": {"properties": {"a": {"anyOf": 3}}}}',
            400,
            "'anyOf' at #/properties/a must be an array",
        ),
        (
            "/api/generate",
            b'{"model": "smollm2:135m", "prompt": "hi", "stream": "yes"}',
            400,
            "stream",
        ),
        (
            "/api/generate",
            b'{"model": "smollm2:135m", "prompt": "hi", "raw": true, "system": "x"}',
            400,
            "raw",
        ),
        (
            "/api/chat",
            b'{"model": "smollm2:135m", "messages": [{"role": "wizard", "content": "x"}]}',
            400,
            "role",
        ),
        (
            "/api/chat",
            b'{"model": "smollm2:135m", "messages": [{"role": "user"}], "top_logprobs": 50}',
            400,
            "top_logprobs",
        ),
        ("/api/embed", b'{"model": "smollm2:135m", "input": [1, 2]}', 400, "input"),
        (
            "/api/generate",
            b'{"model": "smollm2:135m", "prompt": "def f(", "suffix": "return 1"}',
            400,
            "does not support insert",
        ),
        ("/api/copy", b'{"source": "smollm2:135m"}', 400, "destination"),
        ("/api/create", b'{"model": "x:1"}', 400, "from"),
        (
            # a digest that is no string used to read "invalid digest 'int'"
            "/api/create",
            b'{"model": "x:1", "files": {"model.gguf": 5}}',
            400,
            "blob digests (strings); 'model.gguf' does not",
        ),
        (
            "/api/create",
            b'{"model": "x:1", "from": "smollm2:135m", "stream": false, "messages": [1]}',
            400,
            "each message needs a role",
        ),
        (
            # arguments as JSON text escape the body's depth limit (they used to be a 500)
            "/api/chat",
            b'{"model": "smollm2:135m", "messages": [{"role": "assistant", "content": "",'
            b' "tool_calls": [{"function": {"name": "f", "arguments": "'
            + b"[" * 10**5
            + b'"}}]}]}',
            400,
            "deeper than 64",
        ),
    ],
)
def test_errors_are_json_with_status_codes(
    url: str, path: str, body: bytes, status: int, needle: str
) -> None:
    response = requests.post(
        url + path, data=body, timeout=60, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]


def test_wrong_method_and_unknown_route_are_json(url: str) -> None:
    wrong = requests.get(url + "/api/generate", timeout=10)
    assert wrong.status_code == 405 and "error" in wrong.json()
    missing = requests.delete(url + "/api/delete", json={"model": "no-such:1"}, timeout=10)
    assert missing.status_code == 404
    assert missing.json() == {"error": "model 'no-such:1' not found"}


def test_unusable_and_unknown_options_are_accepted(url: str) -> None:
    options = {
        **GREEDY,
        "num_predict": 2,
        "mirostat": 1,
        "tfs_z": 1.0,
        "num_gpu": 0,
        "use_mlock": False,
        "penalize_newline": True,
        "not_an_option": 1,
    }
    response = requests.post(
        url + "/api/generate",
        timeout=120,
        json={"model": MODEL, "prompt": "Hi", "stream": False, "options": options},
    )
    assert response.status_code == 200
    assert response.json()["eval_count"] <= 2


def test_blob_upload_verifies_the_digest(url: str) -> None:
    data = b"GGUF-not-really-a-model " + hashlib.sha256(url.encode()).digest()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert requests.head(f"{url}/api/blobs/{digest}", timeout=10).status_code == 404

    wrong = "sha256:" + hashlib.sha256(data + b"x").hexdigest()
    refused = requests.post(f"{url}/api/blobs/{wrong}", data=data, timeout=30)
    assert refused.status_code == 400
    assert "digest" in refused.json()["error"]
    assert requests.head(f"{url}/api/blobs/{wrong}", timeout=10).status_code == 404
    assert requests.head(f"{url}/api/blobs/{digest}", timeout=10).status_code == 404

    # chunked transfer (no Content-Length) is streamed in as well
    created = requests.post(
        f"{url}/api/blobs/{digest}", data=iter([data[:10], data[10:]]), timeout=30
    )
    assert created.status_code == 201
    assert requests.head(f"{url}/api/blobs/{digest}", timeout=10).status_code == 200
    assert requests.post(f"{url}/api/blobs/{digest}", data=data, timeout=30).status_code == 200

    bad = requests.head(f"{url}/api/blobs/sha256:nothex", timeout=10)
    assert bad.status_code == 400


def test_empty_prompt_loads_and_keep_alive_zero_unloads(url: str) -> None:
    loaded = requests.post(url + "/api/generate", json={"model": MODEL}, timeout=120).json()
    assert loaded["done"] is True and loaded["done_reason"] == "load"
    assert loaded["response"] == ""
    assert MODEL in {m["name"] for m in requests.get(url + "/api/ps", timeout=10).json()["models"]}

    unloaded = requests.post(
        url + "/api/generate", json={"model": MODEL, "keep_alive": 0}, timeout=120
    ).json()
    assert unloaded["done_reason"] == "unload"
    assert MODEL not in {
        m["name"] for m in requests.get(url + "/api/ps", timeout=10).json()["models"]
    }

    chat = requests.post(
        url + "/api/chat", json={"model": MODEL, "messages": []}, timeout=120
    ).json()
    assert chat["done_reason"] == "load"
    assert chat["message"] == {"role": "assistant", "content": ""}
    ps = requests.get(url + "/api/ps", timeout=10).json()["models"]
    assert next(m for m in ps if m["name"] == MODEL)["size_vram"] == 0


def test_a_keep_alive_beyond_any_date_keeps_the_model_loaded(url: str) -> None:
    # 1e30 seconds used to be kept as is: /api/ps then failed with a 500 on the expiry date
    for keep_alive in (1e30, "9999999999999999999999999999999999d"):
        loaded = requests.post(
            url + "/api/generate", json={"model": MODEL, "keep_alive": keep_alive}, timeout=120
        )
        assert loaded.status_code == 200
        ps = requests.get(url + "/api/ps", timeout=10)
        assert ps.status_code == 200
        assert MODEL in {m["name"] for m in ps.json()["models"]}
        assert requests.get(url + "/power/loaded", timeout=10).status_code == 200


def test_json_format_output_parses(url: str) -> None:
    # "json" mode is checked only for its start: the generic JSON grammar is slow on two
    # cores and the tiny model writes long objects; the schema below is parsed in full.
    plain = requests.post(
        url + "/api/generate",
        timeout=120,
        json={
            "model": MODEL,
            "prompt": "Give a JSON object describing a cat.",
            "format": "json",
            "stream": False,
            "options": {"temperature": 0, "num_predict": 4},
        },
    ).json()
    assert plain["response"].lstrip().startswith("{")

    schema = {
        "type": "object",
        "properties": {"age": {"type": "integer"}, "available": {"type": "boolean"}},
        "required": ["age", "available"],
        "additionalProperties": False,
    }
    shaped = _chat_in_format(url, "Ollama is 22. JSON please.", schema, num_predict=40)
    value = json.loads(shaped.json()["message"]["content"])
    assert isinstance(value["age"], int) and isinstance(value["available"], bool)


def _chat_in_format(
    url: str, content: str, schema: dict[str, Any], num_predict: int
) -> requests.Response:
    """A greedy, non-streamed /api/chat of one user message whose answer ``schema`` shapes."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "format": schema,
        "stream": False,
        "options": {"temperature": 0, "num_predict": num_predict},
    }
    return requests.post(url + "/api/chat", json=body, timeout=120)


def test_a_format_with_a_patterns_escapes_is_followed(url: str) -> None:
    # "\d" in a pattern was copied into the grammar, which llama.cpp refused: a 400
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": r"^\d{3}$"}},
        "required": ["code"],
    }
    answer = _chat_in_format(url, "Give an area code as JSON.", schema, num_predict=30)
    assert answer.status_code == 200, answer.text
    assert re.fullmatch(r"\d{3}", json.loads(answer.json()["message"]["content"])["code"])


def test_context_round_trip(url: str) -> None:
    first = requests.post(
        url + "/api/generate",
        timeout=120,
        json={"model": MODEL, "prompt": "My name is Ada.", "stream": False, "options": GREEDY},
    ).json()
    context = first["context"]
    assert context and first["prompt_eval_count"] <= len(context)

    second = requests.post(
        url + "/api/generate",
        timeout=120,
        json={
            "model": MODEL,
            "prompt": "What is my name?",
            "context": context,
            "stream": False,
            "options": GREEDY,
        },
    ).json()
    assert second["context"][: len(context)] == context
    assert second["prompt_eval_count"] > len(context)


def test_logprobs_travel_with_their_tokens(url: str, post_ndjson: Any) -> None:
    _, lines = post_ndjson(
        url + "/api/generate",
        {"model": MODEL, "prompt": "Hi", "options": GREEDY, "logprobs": True, "top_logprobs": 2},
    )
    entries = [e for line in lines for e in line.get("logprobs", [])]
    assert entries
    text = "".join(line["response"] for line in lines)
    assert "".join(e["token"] for e in entries) == text
    for entry in entries:
        assert entry["logprob"] <= 0
        assert len(entry["top_logprobs"]) == 2
        assert entry["top_logprobs"][0]["logprob"] >= entry["logprob"] - 1e-6
    # as Ollama: top_logprobs without logprobs asks for nothing
    _, plain = post_ndjson(
        url + "/api/generate",
        {"model": MODEL, "prompt": "Hi", "options": GREEDY, "top_logprobs": 2},
    )
    assert plain and not any("logprobs" in line for line in plain)


def test_embed_of_nothing_only_loads(url: str) -> None:
    answer = requests.post(
        url + "/api/embed", json={"model": MODEL, "input": []}, timeout=120
    ).json()
    assert answer["embeddings"] == []
    assert type(answer["load_duration"]) is int and type(answer["total_duration"]) is int
    legacy = requests.post(url + "/api/embeddings", json={"model": MODEL}, timeout=120).json()
    assert legacy == {"embedding": []}


def _ps_entry(url: str) -> dict[str, Any]:
    models = requests.get(url + "/api/ps", timeout=10).json()["models"]
    return next(m for m in models if m["name"] == MODEL)


def test_load_options_reload_and_keep_alive_sets_expiry(url: str) -> None:
    small = {"model": MODEL, "options": {"num_ctx": 1024}, "keep_alive": "2h"}
    assert requests.post(url + "/api/generate", json=small, timeout=120).status_code == 200
    entry = _ps_entry(url)
    assert entry["context_length"] == 1024
    expires = datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00"))
    assert expires > datetime.now(UTC) + timedelta(hours=1)

    requests.post(url + "/api/generate", json={"model": MODEL}, timeout=120)
    assert _ps_entry(url)["context_length"] == 2048


def test_load_options_llama_cpp_cannot_honour_are_400s(url: str) -> None:
    # crashed the server; a num_ctx past the KV cache's memory or llama.cpp's 32-bit cell
    # count is refused as well (tests/backend/test_limits.py), but SmolLM2's is cut to the
    # 8192 it was trained for first
    body = {"model": MODEL, "prompt": "hi", "options": {"num_thread": 100_000}, "stream": False}
    response = requests.post(url + "/api/generate", json=body, timeout=120)
    assert response.status_code == 400, response.text
    assert "num_thread must be at most 512" in response.json()["error"]
    for num_ctx in (1_000_000_000, 2_000_000_000):  # 52 s then a 500; a wrapped count
        body = {"model": MODEL, "prompt": "hi", "options": {"num_ctx": num_ctx, "num_predict": 1}}
        response = requests.post(url + "/api/generate", json=body, timeout=120)
        assert response.status_code == 200, response.text
        assert _ps_entry(url)["context_length"] == 8192
    # the server lives on, and loads the model again with the usual options (greedy:
    # sampled, the answer could end at once, with no token counted)
    options = {"temperature": 0, "num_predict": 2}
    answer = requests.post(
        url + "/api/generate",
        json={"model": MODEL, "prompt": "hi", "stream": False, "options": options},
        timeout=120,
    )
    assert answer.status_code == 200 and answer.json()["eval_count"] > 0


def test_options_refused_before_loading_leave_the_loaded_model_loaded(url: str) -> None:
    usual = {"model": MODEL, "prompt": "hi", "stream": False, "options": {"num_predict": 1}}
    assert requests.post(url + "/api/generate", json=usual, timeout=120).status_code == 200
    before = _ps_entry(url)
    for options in ({"num_thread": 100_000}, {"num_thread": 0}):
        body = {**usual, "options": options}
        assert requests.post(url + "/api/generate", json=body, timeout=120).status_code == 400
    # still loaded (a refused load after unloading it left none): nobody else pays for a
    # reload
    after = _ps_entry(url)
    assert after["context_length"] == before["context_length"]
    assert after["digest"] == before["digest"]


def test_a_batch_larger_than_the_context_is_cut_to_it(url: str) -> None:
    body = {
        "model": MODEL,
        "prompt": "hi",
        "stream": False,
        "options": {"num_batch": 1_000_000_000, "num_predict": 2},
    }
    response = requests.post(url + "/api/generate", json=body, timeout=120)
    assert response.status_code == 200, response.text


def test_show_leaves_large_arrays_out_unless_verbose(url: str, model_path: Path) -> None:
    brief = requests.post(url + "/api/show", json={"model": MODEL}, timeout=30).json()
    info = brief["model_info"]
    assert info["tokenizer.ggml.tokens"] == []
    full = requests.post(url + "/api/show", json={"model": MODEL, "verbose": True}, timeout=60)
    tokens = full.json()["model_info"]["tokenizer.ggml.tokens"]
    assert len(tokens) == info["llama.vocab_size"]
    # as Ollama: no name, no chat template (``template`` has the one prompts use), and
    # every array longer than 5 empty unless verbose
    assert "general.name" not in info and "tokenizer.chat_template" not in info
    assert all(len(value) <= 5 for value in info.values() if isinstance(value, list))
    # the tensors, as the GGUF lists them
    reader = gguf.GGUFReader(model_path)
    assert brief["tensors"] == [
        {"name": t.name, "type": t.tensor_type.name, "shape": [int(n) for n in t.shape]}
        for t in reader.tensors
    ]
    assert {t["type"] for t in brief["tensors"]} >= {"Q4_1", "F32"}


def test_generate_thinking_goes_to_its_own_field(url: str, post_ndjson: Any) -> None:
    # a template whose generation prompt opens <think>: all output is reasoning
    template = (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{{ message['content'] }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n<think>\n"
    )
    body = {
        "model": MODEL,
        "prompt": "Why is the sky blue?",
        "template": template,
        "think": True,
        "options": {"temperature": 0, "num_predict": 6},
    }
    _, lines = post_ndjson(url + "/api/generate", body)
    assert "".join(line.get("thinking", "") for line in lines[:-1])
    assert all(line["response"] == "" for line in lines)
    _check_final(lines[-1])
    # the next turn after the context it returned: a prompt of tokens, still read as
    # opening <think> (its last tokens say so)
    follow = {**body, "prompt": "And at night?", "context": lines[-1]["context"]}
    _, lines = post_ndjson(url + "/api/generate", follow)
    assert "".join(line.get("thinking", "") for line in lines[:-1])
    assert all(line["response"] == "" for line in lines)


def test_images_for_a_text_model_on_generate_are_400(url: str) -> None:
    response = requests.post(
        url + "/api/generate",
        timeout=30,
        json={"model": MODEL, "prompt": "What is this?", "images": ["aGVsbG8="]},
    )
    assert response.status_code == 400
    assert "does not support images" in response.json()["error"]
    bad = requests.post(
        url + "/api/generate",
        timeout=30,
        json={"model": MODEL, "prompt": "What is this?", "images": ["not base64!"]},
    )
    assert bad.status_code == 400 and "base64" in bad.json()["error"]


def test_create_from_an_older_clients_modelfile(url: str, post_ndjson: Any) -> None:
    modelfile = f"FROM {MODEL}\nSYSTEM You are terse.\nPARAMETER temperature 0.2\n"
    response, lines = post_ndjson(
        url + "/api/create", {"model": "ollama-test-legacy:1", "modelfile": modelfile}
    )
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert lines[-1] == {"status": "success"}
    shown = requests.post(url + "/api/show", json={"model": "ollama-test-legacy:1"}, timeout=30)
    assert shown.json()["system"] == "You are terse."
    assert "temperature" in shown.json()["parameters"]
    requests.delete(url + "/api/delete", json={"model": "ollama-test-legacy:1"}, timeout=30)

    local_file = requests.post(
        url + "/api/create",
        timeout=30,
        json={"model": "ollama-test-legacy:2", "modelfile": "FROM /etc/passwd\n"},
    )
    assert local_file.status_code == 400
    assert "blobs" in local_file.json()["error"]


def test_a_chat_longer_than_the_context_loses_its_oldest_turns(url: str) -> None:
    messages = [{"role": "system", "content": "You are terse."}]
    for i in range(24):
        messages.append({"role": "user", "content": f"Note {i}: the fox jumps over the dog."})
        messages.append({"role": "assistant", "content": f"Noted, note {i}."})
    messages.append({"role": "user", "content": "Say hi."})
    body = {"model": MODEL, "messages": messages, "stream": False}
    small = {"num_ctx": 256, **GREEDY}

    refused = requests.post(
        url + "/api/chat", json={**body, "options": small, "truncate": False}, timeout=120
    )
    assert refused.status_code == 400 and "context" in refused.json()["error"]

    answer = requests.post(url + "/api/chat", json={**body, "options": small}, timeout=120)
    assert answer.status_code == 200, answer.text
    final = answer.json()
    _check_final(final)
    # as much history as fits with room for the 8 tokens asked for, not the last turn alone
    assert 128 < final["prompt_eval_count"] <= 256 - 8

    # a last turn that alone overflows the context loses its middle, as Ollama's does
    long_turn = [{"role": "user", "content": "Read this. " + "The fox jumps. " * 100 + "Hi!"}]
    cut = requests.post(
        url + "/api/chat", json={**body, "messages": long_turn, "options": small}, timeout=120
    )
    assert cut.status_code == 200, cut.text
    assert cut.json()["prompt_eval_count"] <= 255  # the reply shifts the context


def test_a_full_context_shifts_and_generation_goes_on(url: str) -> None:
    body = {"model": MODEL, "prompt": "Once upon a time", "raw": True, "stream": False}
    options = {"num_ctx": 128, "temperature": 0}

    def generate(**extra: Any) -> dict[str, Any]:
        response = requests.post(url + "/api/generate", json={**body, **extra}, timeout=120)
        assert response.status_code == 200, response.text
        final: dict[str, Any] = response.json()
        _check_final(final)
        return final

    stopped = generate(options={**options, "num_predict": 200}, shift=False)
    assert stopped["done_reason"] == "length"
    assert stopped["prompt_eval_count"] + stopped["eval_count"] == 128
    filled = generate(options={**options, "num_predict": -2})  # Ollama: fill the context
    assert filled["eval_count"] == stopped["eval_count"]
    created = requests.post(
        url + "/api/create",
        json={"model": "ollama-test-fill:1", "from": MODEL, "parameters": {"num_predict": -2}},
        timeout=60,
    )
    assert created.status_code == 200, created.text
    try:  # the same from a Modelfile
        filled = generate(model="ollama-test-fill:1", options=options)
        assert filled["eval_count"] == stopped["eval_count"]
        # a request's 0 is no limit, as in Ollama's runners, over the Modelfile's too
        unlimited = generate(
            model="ollama-test-fill:1", options={**options, "num_predict": 0}, shift=False
        )
        assert unlimited["eval_count"] == stopped["eval_count"]
    finally:
        requests.delete(url + "/api/delete", json={"model": "ollama-test-fill:1"}, timeout=30)
    shifted = generate(options={**options, "num_predict": 200, "num_keep": 1})
    # past the full context (up to 200 tokens, unless the story ends after a shift)
    assert shifted["eval_count"] > stopped["eval_count"]
    assert shifted["eval_count"] == 200 or shifted["done_reason"] == "stop"

    assert "context" not in shifted  # as Ollama: raw mode returns no context

    # a context longer than the model's (from a larger num_ctx) loses its middle, as Ollama
    # cuts it
    long = {**body, "raw": False, "prompt": "word " * 150}
    context = generate(**long, options={**options, "num_ctx": 512, "num_predict": 1})["context"]
    assert len(context) > 150
    more = {
        "raw": False,
        "prompt": "The end.",
        "context": context,
        "options": {**options, "num_predict": 4},
    }
    refused = requests.post(
        url + "/api/generate", json={**body, **more, "truncate": False}, timeout=120
    )
    assert refused.status_code == 400 and "context" in refused.json()["error"]
    went_on = generate(**more)
    assert went_on["prompt_eval_count"] == 127  # all the context holds; the reply shifts it


def test_a_request_without_limit_overrides_the_modelfiles_num_predict(url: str) -> None:
    created = requests.post(
        url + "/api/create",
        json={"model": "ollama-test-short:1", "from": MODEL, "parameters": {"num_predict": 2}},
        timeout=60,
    )
    assert created.status_code == 200, created.text
    body = {
        "model": "ollama-test-short:1",
        "prompt": "Write one sentence about the sea.",
        "stream": False,
        "options": {"temperature": 0, "stop": ["."]},
    }
    try:
        short = requests.post(url + "/api/generate", json=body, timeout=120).json()
        assert short["eval_count"] == 2 and short["done_reason"] == "length"
        body["options"]["num_predict"] = -1
        unlimited = requests.post(url + "/api/generate", json=body, timeout=120).json()
        assert unlimited["eval_count"] > 2 and unlimited["done_reason"] == "stop"
    finally:
        requests.delete(url + "/api/delete", json={"model": "ollama-test-short:1"}, timeout=30)


def test_a_prompt_is_cut_only_where_it_would_not_fit(url: str) -> None:
    body = {"model": MODEL, "prompt": "word " * 110, "raw": True, "stream": False}
    options = {"num_ctx": 128, "temperature": 0, "num_predict": 40}

    def prompt_tokens(**extra: Any) -> int:
        response = requests.post(url + "/api/generate", json={**body, **extra}, timeout=120)
        assert response.status_code == 200, response.text
        return int(response.json()["prompt_eval_count"])

    whole = prompt_tokens(options=options)  # fits the context; the reply shifts it if needed
    assert 100 < whole < 128
    # without the shift the reply keeps its room: the prompt loses its middle
    assert prompt_tokens(options=options, shift=False) == 128 - 40


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/generate", b'{"model": "smollm2:135m", "prompt": "a\\ud800b"'),
        (
            "/api/chat",
            b'{"model": "smollm2:135m", "messages": [{"role": "user", "content": "a\\udc00"}]',
        ),
        ("/api/embed", b'{"model": "smollm2:135m", "input": "\\ud83d"'),
    ],
)
def test_half_a_utf16_pair_is_read_as_a_replacement_character(
    url: str, path: str, body: bytes
) -> None:
    # JSON may escape one half of a surrogate pair alone; as Ollama (Go) does, it reads as
    # U+FFFD instead of failing the request (it was a 500: no UTF-8 text can hold it)
    options = b', "stream": false, "options": {"num_predict": 2}}'
    response = requests.post(url + path, data=body + options, timeout=60)
    assert response.status_code == 200, response.text


def _event_descriptors(pid: int) -> int:
    """The epoll and eventfd descriptors a process holds (what a gevent hub opens)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}") in (
                "anon_inode:[eventpoll]",
                "anon_inode:[eventfd]",
            )
    return count


def test_loading_and_unloading_leaves_no_descriptors_behind(power_server: PowerServer) -> None:
    # an unload waited on a native thread, where asking gevent for a hub made one that
    # outlived the thread: an epoll and an eventfd lost per unload
    assert power_server.process is not None
    url = power_server.url

    def load_and_unload() -> None:
        body = {"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 1}}
        assert requests.post(url + "/api/generate", json=body, timeout=120).status_code == 200
        unload = {"model": MODEL, "keep_alive": 0}
        assert requests.post(url + "/api/generate", json=unload, timeout=120).status_code == 200

    load_and_unload()
    before = _event_descriptors(power_server.process.pid)
    for _ in range(3):
        load_and_unload()
    assert _event_descriptors(power_server.process.pid) == before


def test_a_shutdown_lets_the_requests_under_way_finish(tmp_path: Path) -> None:
    # one thread: llama.cpp's spinning workers slow down many times over on a busy machine,
    # and the request under way must end within the shutdown's 10 s of grace (400 tokens on
    # two threads took 27 s on a loaded 2-core machine; on one thread, 6 s)
    server = PowerServer(tmp_path, num_ctx="1024", num_thread="1")
    import_test_model(server.env)
    server.start()
    try:
        assert server.process is not None
        # connections kept alive from before the signal, one per refused request below
        kept_alive, loader, puller = requests.Session(), requests.Session(), requests.Session()
        for session in (kept_alive, loader, puller):
            assert session.get(server.url + "/api/version", timeout=30).status_code == 200
        # 200 tokens with the end-of-text token banned: about a second or more, far longer
        # than what follows the signal, and well within the grace
        long = {
            "model": MODEL,
            "prompt": "Once upon a time",
            "max_tokens": 200,
            "stream": True,
            "logit_bias": {"0": -100, "1": -100, "2": -100},
        }
        response = requests.post(server.url + "/v1/completions", json=long, stream=True, timeout=60)
        lines = response.iter_lines()
        assert next(lines).startswith(b"data: ")  # under way
        server.process.send_signal(signal.SIGTERM)
        # the shutdown closes the listening socket, then logs this line: waited for, not
        # slept on (a loaded machine may take longer to handle the signal; and a connection
        # tried to find out could itself be a request under way)
        deadline = time.monotonic() + 30
        while "waiting for 1 request(s) to finish" not in server.log():
            assert server.process.poll() is None and time.monotonic() < deadline, server.log()
            time.sleep(0.01)
        with pytest.raises(requests.ConnectionError):  # no new connections meanwhile
            requests.get(server.url + "/", timeout=5)
        # nor new generations on a connection kept alive, which is closed after the answer
        hi = {"model": MODEL, "prompt": "Hi", "stream": False}
        refused = kept_alive.post(server.url + "/api/generate", json=hi, timeout=30)
        assert refused.status_code == 503 and "shutting down" in refused.json()["error"]
        assert refused.headers.get("Connection", "").lower() == "close"
        # nor loads (an empty prompt) or pulls, which would outlast the grace period
        load = loader.post(server.url + "/api/generate", json={"model": MODEL}, timeout=30)
        assert load.status_code == 503 and "shutting down" in load.json()["error"]
        pull = puller.post(server.url + "/api/pull", json={"model": "other:1b"}, timeout=30)
        assert pull.status_code == 503 and "shutting down" in pull.json()["error"]
        rest = [line for line in lines if line]
        assert rest[-1] == b"data: [DONE]", rest[-3:]  # finished, not cut
        finish = json.loads(rest[-2][len(b"data: ") :])["choices"][0]["finish_reason"]
        assert finish == "length"
        assert server.process.wait(timeout=30) == 0
        assert "waiting for 1 request(s) to finish" in server.log()
    finally:
        server.stop()


def test_a_go_template_in_a_request_that_cannot_run_is_a_400(url: str) -> None:
    # Ollama would run it; silently using the model's own template instead would answer
    # another prompt than the one asked for
    template = '{{ template "x" . }}{{ .Prompt }}'
    body = {"model": MODEL, "prompt": "Hi", "template": template, "stream": False}
    response = requests.post(url + "/api/generate", json=body, timeout=60)
    assert response.status_code == 400
    assert "Go template uses {{template}}" in response.json()["error"]


def test_ps_and_stop_from_the_command_line(power_server: PowerServer) -> None:
    url = power_server.url
    body = {"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 1}}
    assert requests.post(url + "/api/generate", json=body, timeout=120).status_code == 200
    listed = power_cli(power_server.env, "ps")
    assert MODEL in listed.stdout, listed.stdout
    # as `ollama ps PREFIX`: only the names that start with it
    assert MODEL in power_cli(power_server.env, "ps", MODEL[:4]).stdout
    unmatched = power_cli(power_server.env, "ps", "zz").stdout.splitlines()
    assert [line.split() for line in unmatched] == [listed.stdout.splitlines()[0].split()]
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(MODEL)]
    size_vram = next(m for m in requests.get(url + "/api/ps", timeout=10).json()["models"])[
        "size_vram"
    ]
    assert ("100% CPU" in row) == (size_vram == 0), row
    # stop waits for the request under way, then the model is gone
    long = {"model": MODEL, "prompt": "Count from one to one hundred.", "options": GREEDY_200}
    stream = requests.post(url + "/api/generate", json=long, stream=True, timeout=120)
    lines = stream.iter_lines()
    assert not json.loads(next(lines))["done"]
    stopped = power_cli(power_server.env, "stop", MODEL)
    assert stopped.returncode == 0, stopped.stderr
    rest = [json.loads(line) for line in lines if line]
    assert rest[-1]["done"] is True and "error" not in rest[-1]
    assert MODEL not in power_cli(power_server.env, "ps").stdout


def test_the_request_log_times_a_stream_to_its_end(power_server: PowerServer) -> None:
    # a stream's line is written after its last chunk, with the whole time, not the time
    # its headers took; the query string stays out of the log
    options = {"num_predict": 48, "temperature": 0}
    body = {"model": MODEL, "prompt": "Once upon a time", "raw": True, "options": options}

    def lines() -> list[str]:
        return [line for line in power_server.log().splitlines() if "POST /api/generate " in line]

    def post(path: str, payload: dict[str, Any]) -> requests.Response:
        # each line is written once the answer is out: wait for it, so lines stay in order
        count = len(lines())
        response = requests.post(power_server.url + path, json=payload, timeout=120)
        deadline = time.monotonic() + 10
        while len(lines()) == count and time.monotonic() < deadline:
            time.sleep(0.05)
        return response

    assert post("/api/generate", {"model": MODEL}).status_code == 200  # loading is not timed
    started = time.monotonic()
    response = post("/api/generate?trace=1", body)
    took_ms = (time.monotonic() - started) * 1000
    assert response.status_code == 200 and response.text.count("\n") > 40
    logged_ms = float(lines()[-1].rsplit(" ", 1)[1].removesuffix("ms"))
    assert took_ms * 0.5 < logged_ms <= took_ms, (logged_ms, took_ms)
