"""A model created from a Modelfile with a Go TEMPLATE (Ollama's syntax) prompts the real
model with that template: the tokens the model saw are compared with the tokens of the
text the template should have produced."""

from __future__ import annotations

from typing import Any

import requests

MODEL = "smollm2:135m"
ONE_TOKEN = {"temperature": 0, "num_predict": 1}
# nothing like SmolLM2's own ChatML: a prompt built with that would tokenize otherwise
GO_TEMPLATE = (
    "{{- if .System }}### Rules\n{{ .System }}\n{{ end }}"
    '{{- range .Messages }}{{ if ne .Role "system" }}### {{ .Role }}\n{{ .Content }}\n'
    "{{ end }}{{ end }}### assistant\n"
)
MODELFILE = f'FROM {MODEL}\nTEMPLATE """{GO_TEMPLATE}"""\nSYSTEM Answer like a pirate.\n'
# the text itself, sent through a Jinja template that prints the prompt as it is
AS_IS = "{{ messages[-1]['content'] }}"


def _post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(url + path, json={**body, "stream": False}, timeout=120)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _prompt_tokens(url: str, text: str) -> list[int]:
    """The tokens the model sees for ``text`` (what ``/api/generate``'s context starts with)."""
    body = {"model": MODEL, "prompt": text, "template": AS_IS, "options": ONE_TOKEN}
    answer = _post(url, "/api/generate", body)
    tokens: list[int] = answer["context"][: answer["prompt_eval_count"]]
    return tokens


def test_a_modelfile_go_template_shapes_the_prompt(url: str) -> None:
    created = _post(url, "/api/create", {"model": "go-pirate", "modelfile": MODELFILE})
    assert created["status"] == "success"
    assert not any("warning" in str(value) for value in created.values())
    shown = _post(url, "/api/show", {"model": "go-pirate"})
    assert shown["template"] == GO_TEMPLATE

    # /api/generate: the prompt is one user turn; the Modelfile's SYSTEM is .System
    answer = _post(
        url,
        "/api/generate",
        {"model": "go-pirate", "prompt": "Name a color.", "options": ONE_TOKEN},
    )
    expected = "### Rules\nAnswer like a pirate.\n### user\nName a color.\n### assistant\n"
    seen = answer["context"][: answer["prompt_eval_count"]]
    assert seen == _prompt_tokens(url, expected)

    # /api/chat: the whole conversation through .Messages
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Ahoy!"},
        {"role": "user", "content": "Name a color."},
    ]
    chat = _post(
        url, "/api/chat", {"model": "go-pirate", "messages": messages, "options": ONE_TOKEN}
    )
    expected_chat = (
        "### Rules\nAnswer like a pirate.\n### user\nHi\n### assistant\nAhoy!\n"
        "### user\nName a color.\n### assistant\n"
    )
    assert chat["prompt_eval_count"] == len(_prompt_tokens(url, expected_chat))
    # the model's own template would have made another prompt
    own = _post(url, "/api/chat", {"model": MODEL, "messages": messages, "options": ONE_TOKEN})
    assert own["prompt_eval_count"] != chat["prompt_eval_count"]


def test_a_go_template_in_a_request_shapes_the_prompt(url: str) -> None:
    template = "<<{{ .Prompt }}>>{{ if .System }}unexpected{{ end }}"
    body = {"model": MODEL, "prompt": "Hi there", "template": template, "options": ONE_TOKEN}
    answer = _post(url, "/api/generate", body)
    # a legacy template: .Prompt, then .Response appended (empty), as Ollama renders it
    seen = answer["context"][: answer["prompt_eval_count"]]
    assert seen == _prompt_tokens(url, "<<Hi there>>")


def test_a_go_template_with_suffix_writes_the_fill_in_the_middle_prompt(url: str) -> None:
    # SmolLM2 has no FIM tokens of its own (a suffix alone is refused); a template that
    # names .Suffix writes the prompt instead, as Ollama's do
    template = (
        "{{ if .Suffix }}<PRE>{{ .Prompt }}<SUF>{{ .Suffix }}<MID>{{ else }}{{ .Prompt }}{{ end }}"
    )
    body = {
        "model": MODEL,
        "prompt": "def f(",
        "suffix": "return 1",
        "template": template,
        "options": ONE_TOKEN,
    }
    answer = _post(url, "/api/generate", body)
    seen = answer["context"][: answer["prompt_eval_count"]]
    assert seen == _prompt_tokens(url, "<PRE>def f(<SUF>return 1<MID>")


def test_a_think_level_reaches_the_template_as_ollama_passes_it(url: str) -> None:
    # naming .Thinking makes the template a thinking one, so think is taken
    template = "{{ range .Messages }}{{ .Thinking }}{{ .Content }}{{ end }} [{{ .ThinkLevel }}]"
    for think, level in ((True, "medium"), ("high", "high"), ("low", "low"), (False, "")):
        body = {"model": MODEL, "prompt": "Hi", "template": template, "think": think}
        answer = _post(url, "/api/generate", {**body, "options": ONE_TOKEN})
        seen = answer["context"][: answer["prompt_eval_count"]]
        assert seen == _prompt_tokens(url, f"Hi [{level}]"), think
