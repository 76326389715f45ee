"""Loading, keep-alive expiry and LRU eviction with the real llama.cpp backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from power_core.config import Settings
from power_core.errors import ModelNotFound
from power_core.plugins import get_registry
from power_core.services import PowerServices
from power_core.types import GenerationDone, GenerationRequest


class ManualClock:
    """The scheduler's time source, advanced by the test instead of by waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def services(tmp_path: Path, model_path: Path) -> PowerServices:
    settings = Settings(
        home=tmp_path, max_loaded_models=1, keep_alive=300.0, num_ctx=512, num_parallel=2
    )
    services = PowerServices(settings, get_registry())
    services.library.import_gguf(model_path, "first:latest")
    services.library.copy("first:latest", "second:latest")
    clock = ManualClock()
    services.scheduler._clock = clock  # the only seam: time, not behaviour
    services.clock = clock  # type: ignore[attr-defined]
    yield services
    services.close()


def generate(services: PowerServices, model: str, keep_alive: float | None = None) -> str:
    stream = services.generate(
        GenerationRequest(
            model=model,
            prompt="Hi",
            max_tokens=3,
            keep_alive=keep_alive,
            sampling={"temperature": 0.0},
        )
    )
    text = []
    done = None
    for event in stream:
        if isinstance(event, GenerationDone):
            done = event
        elif hasattr(event, "text"):
            text.append(event.text)
    assert done is not None
    return "".join(text)


def loaded_names(services: PowerServices) -> list[str]:
    return [entry.model.name for entry in services.loaded_models()]


def test_model_loads_on_first_use_and_stays_for_keep_alive(services: PowerServices) -> None:
    assert loaded_names(services) == []
    generate(services, "first")
    assert loaded_names(services) == ["first:latest"]
    services.clock.now += 299  # type: ignore[attr-defined]
    assert loaded_names(services) == ["first:latest"]
    services.clock.now += 2  # type: ignore[attr-defined]
    assert loaded_names(services) == []


def test_keep_alive_zero_unloads_right_after(services: PowerServices) -> None:
    generate(services, "first", keep_alive=0)
    assert loaded_names(services) == []


def test_negative_keep_alive_keeps_it_loaded(services: PowerServices) -> None:
    generate(services, "first", keep_alive=-1)
    services.clock.now += 10**9  # type: ignore[attr-defined]
    assert loaded_names(services) == ["first:latest"]


def test_lru_eviction_at_max_loaded_models(services: PowerServices) -> None:
    generate(services, "first")
    generate(services, "second")
    assert loaded_names(services) == ["second:latest"]


def test_never_evicted_under_a_running_request(services: PowerServices) -> None:
    stream = services.generate(
        GenerationRequest(model="first", prompt="Count to fifty", max_tokens=40)
    )
    events = iter(stream)
    next(events)  # first is now generating
    entry = services.loaded_models()[0]
    assert entry.leases == 1
    services.clock.now += 10**6  # type: ignore[attr-defined]
    services.scheduler.reap_expired()
    assert loaded_names(services) == ["first:latest"], "expired model unloaded while generating"
    for _ in events:
        pass
    assert services.loaded_models()[0].leases == 0


def test_changing_a_load_option_reloads(services: PowerServices) -> None:
    generate(services, "first")
    first_engine = services.loaded_models()[0].engine
    stream = services.generate(
        GenerationRequest(model="first", prompt="Hi", max_tokens=2, load={"num_ctx": 256})
    )
    list(stream)
    entry = services.loaded_models()[0]
    assert entry.engine is not first_engine
    assert entry.engine.info.context_length == 256


def test_a_context_past_what_the_model_was_trained_for_is_cut_to_it(
    services: PowerServices, caplog: pytest.LogCaptureFixture
) -> None:
    trained = services.library.resolve("first").metadata["llama.context_length"]
    assert trained == 8192  # SmolLM2-135M
    for asked, loaded in ((trained * 2, trained), (1024, 1024)):
        stream = services.generate(
            GenerationRequest(model="first", prompt="Hi", max_tokens=2, load={"num_ctx": asked})
        )
        list(stream)
        assert services.loaded_models()[0].engine.info.context_length == loaded
    assert "num_ctx 16384 is more than the 8192 tokens it was trained for" in caplog.text


def test_a_model_deleted_while_a_request_loads_it_is_not_found(
    services: PowerServices, model_path: Path, tmp_path: Path
) -> None:
    # its own weights (a few bytes more than the shared file): the delete removes them
    own = tmp_path / "own.gguf"
    own.write_bytes(model_path.read_bytes() + b"\0" * 64)
    services.library.import_gguf(own, "solo:latest")
    resolved = services.library.resolve("solo")  # as a request does, before loading
    services.library.delete("solo")
    with pytest.raises(ModelNotFound):
        services.generate(GenerationRequest(model="solo", prompt="Hi", max_tokens=1), resolved)
