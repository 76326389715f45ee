"""A batch's input file, read line by line: every rule OpenAI's Batch API states, and the
line numbers of what breaks them."""

from __future__ import annotations

import json

from power_api_openai.batch_input import MAX_ERRORS, BatchRequest, read_requests

URL = "/v1/embeddings"


def line(**fields: object) -> bytes:
    base: dict[str, object] = {"custom_id": "a", "method": "POST", "url": URL, "body": {"x": 1}}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_good_lines_become_requests_and_blank_lines_are_skipped() -> None:
    data = b"\n".join([line(), b"", b"   ", line(custom_id="b", body={"y": 2}), b""])
    requests, errors = read_requests(data, URL)
    assert errors == []
    assert requests == [BatchRequest("a", {"x": 1}), BatchRequest("b", {"y": 2})]


def test_each_broken_rule_is_named_with_its_line() -> None:
    data = b"\n".join(
        [
            b"[1, 2]",
            line(custom_id=""),
            line(method="GET"),
            line(body="text"),
            line(custom_id="z"),
            line(custom_id="z"),
        ]
    )
    _, errors = read_requests(data, URL)
    assert [(e["line"], e["code"], e["param"]) for e in errors] == [
        (1, "invalid_json_line", None),
        (2, "missing_required_parameter", "custom_id"),
        (3, "invalid_method", "method"),
        (4, "missing_required_parameter", "body"),
        (6, "duplicate_custom_id", "custom_id"),
    ]


def test_an_empty_file_and_a_flood_of_errors() -> None:
    _, empty = read_requests(b"\n\n", URL)
    assert [e["code"] for e in empty] == ["empty_file"]
    _, many = read_requests(b"\n".join([b"{"] * (MAX_ERRORS + 50)), URL)
    assert len(many) == MAX_ERRORS
