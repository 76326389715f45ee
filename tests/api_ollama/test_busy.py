"""A full queue answers 503 with Retry-After; hung-up streams free their places."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import ENDLESS_RAW_PROMPT, PowerServer, import_test_model

MODEL = "smollm2:135m"
LONG = {"temperature": 0, "num_predict": 4000}


@pytest.fixture(scope="module")
def one_slot_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerServer]:
    """One sequence and one waiting place: a third concurrent request finds no room."""
    server = PowerServer(
        tmp_path_factory.mktemp("busy-home"), num_ctx="4096", num_parallel="1", max_queue="1"
    )
    import_test_model(server.env)
    server.start()
    yield server
    server.stop()


def _stream(url: str) -> requests.Response:
    return requests.post(
        url + "/api/generate",
        stream=True,
        timeout=120,
        json={"model": MODEL, "prompt": ENDLESS_RAW_PROMPT, "raw": True, "options": LONG},
    )


def _leases(url: str) -> int:
    models = requests.get(url + "/power/loaded", timeout=10).json()["models"]
    return sum(m["active"] for m in models)


def test_full_queue_is_503_with_retry_after(one_slot_server: PowerServer) -> None:
    url = one_slot_server.url
    running = _stream(url)
    assert running.status_code == 200
    # keep the line iterator: a discarded one is collected, and closes the connection
    running_lines = running.iter_lines()
    next(running_lines)  # generating
    # The queued request's answer only begins with its first token, so its place in the
    # queue shows as a second lease on the model.
    with ThreadPoolExecutor(1) as pool:
        waiting_answer = pool.submit(_stream, url)
        deadline = time.monotonic() + 60
        while _leases(url) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _leases(url) == 2, "the running and the queued request should both hold leases"
        try:
            refused = requests.post(
                url + "/api/generate",
                timeout=60,
                json={"model": MODEL, "prompt": "Hi", "stream": False, "options": LONG},
            )
            assert refused.status_code == 503
            assert int(refused.headers["Retry-After"]) >= 1
            assert "queue is full" in refused.json()["error"]
        finally:
            running.close()  # hanging up cancels it; the queued one starts, and is closed
            waiting = waiting_answer.result(timeout=120)
            assert waiting.status_code == 200
            waiting.close()
