"""Long embedding inputs over HTTP, with the official client: read in chunks on the
server's engine thread, one input at a time, while the requests wait as greenlets."""

from __future__ import annotations

import threading

import ollama
import pytest

pytestmark = pytest.mark.model

MODEL = "smollm2:135m"
#: about 900 tokens each: four chunks
LONG = [f"Story {n}: " + "the mill by the river turns all day and sings. " * 90 for n in range(3)]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_a_long_input_among_short_ones_gets_the_vector_it_gets_alone(
    client: ollama.Client,
) -> None:
    (alone,) = client.embed(model=MODEL, input=LONG[0]).embeddings
    together = client.embed(model=MODEL, input=["a short one", LONG[0], "another"]).embeddings
    assert len(together) == 3
    assert cosine(alone, together[1]) == pytest.approx(1.0, abs=1e-5)
    assert cosine(together[0], together[1]) < 0.99


def test_long_inputs_sent_at_once_are_each_answered_as_alone(client: ollama.Client) -> None:
    alone = [client.embed(model=MODEL, input=text).embeddings[0] for text in LONG]
    answers: dict[int, list[float]] = {}
    failures: list[BaseException] = []
    all_at_once = threading.Barrier(len(LONG))

    def embed(n: int) -> None:
        all_at_once.wait()
        try:
            answers[n] = client.embed(model=MODEL, input=LONG[n]).embeddings[0]
        except BaseException as exc:  # reported below, with the others
            failures.append(exc)

    threads = [threading.Thread(target=embed, args=(n,)) for n in range(len(LONG))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for n, vector in enumerate(alone):
        assert cosine(vector, answers[n]) == pytest.approx(1.0, abs=1e-5)
