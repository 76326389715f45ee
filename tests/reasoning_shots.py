"""A prompt that has SmolLM2 reason in ``<think>`` before a JSON answer, for the tests of
formats applied after the reasoning (the tiny model copies the pattern when greedy)."""

from __future__ import annotations

#: three answers that reason in <think> before their JSON (ChatML turns)
REASONING_SHOTS = "".join(
    f"<|im_start|>user\nName {asked}.<|im_end|>\n<|im_start|>assistant\n<think>\n"
    f'The user asks for {asked}. {reason}\n</think>\n{{"answer": "{answer}"}}<|im_end|>\n'
    for asked, reason, answer in [
        ("a colour", "Red is a colour.", "red"),
        ("a number", "Seven is a number.", "seven"),
        ("an animal", "A cat is an animal.", "cat"),
    ]
)
#: what the answers are
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 20}},
    "required": ["answer"],
    "additionalProperties": False,
}
