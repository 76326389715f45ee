"""Loading, keep-alive expiry and LRU eviction with the real llama.cpp backend."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from power_core.config import Settings
from power_core.errors import ModelNotFound
from power_core.generation import GenerationStream
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


def test_gpu_options_reload_only_where_llama_cpp_has_gpus(services: PowerServices) -> None:
    """Without a GPU, num_gpu and main_gpu change nothing: a request that differs from the
    loaded model only in them reuses it (as in Ollama, they are ignored there)."""
    from power_backend_llamacpp.devices import list_gpus

    generate(services, "first")
    first_engine = services.loaded_models()[0].engine
    for load in ({"num_gpu": 5}, {"num_gpu": 0, "main_gpu": 0}, {"num_gpu": -3}):
        stream = services.generate(
            GenerationRequest(model="first", prompt="Hi", max_tokens=2, load=load)
        )
        list(stream)
        same = services.loaded_models()[0].engine is first_engine
        assert same == (not list_gpus()), load
        first_engine = services.loaded_models()[0].engine


def test_the_first_load_with_gpu_options_is_reused_by_the_same_request(
    services: PowerServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The options a model is loaded with are compared as later requests' are: the
    first load, which tells the backend whether there are GPUs, is no exception."""
    from power_backend_llamacpp import offload
    from power_backend_llamacpp.devices import list_gpus

    monkeypatch.setattr(offload, "_no_gpus", None)  # as in a process that loaded nothing yet

    engines = set()
    for _ in range(3):
        stream = services.generate(
            GenerationRequest(model="first", prompt="Hi", max_tokens=2, load={"num_gpu": 5})
        )
        list(stream)
        engines.add(id(services.loaded_models()[0].engine))
    assert len(engines) == 1
    if not list_gpus():
        assert services.loaded_models()[0].options.num_gpu == -1  # the same as any value


def test_a_load_failing_on_an_option_the_request_set_is_the_clients_to_change(
    services: PowerServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend's ModelLoadFailed naming a load option (too many layers for the GPU) is a
    400 when the request set the option, and stays a 500 when the settings did."""
    from power_core.errors import InvalidRequest, ModelLoadFailed

    [backend] = services.scheduler._backends().values()

    def out_of_memory(spec: object) -> object:
        raise ModelLoadFailed("out of memory with num_gpu=77 layers", param="num_gpu")

    monkeypatch.setattr(backend, "load", out_of_memory)
    asked = GenerationRequest(model="first", prompt="Hi", max_tokens=2, load={"num_gpu": 77})
    with pytest.raises(InvalidRequest, match="num_gpu=77") as refused:
        list(services.generate(asked))
    assert refused.value.param == "num_gpu" and refused.value.http_status == 400
    configured = GenerationRequest(model="first", prompt="Hi", max_tokens=2)
    with pytest.raises(ModelLoadFailed) as failed:
        list(services.generate(configured))
    assert failed.value.http_status == 500


def test_every_negative_num_gpu_is_one_value() -> None:
    from power_core.scheduler import checked_load_option

    assert checked_load_option("num_gpu", -7) == -1
    assert checked_load_option("num_gpu", 0) == 0
    assert checked_load_option("num_gpu", 12) == 12


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


def test_a_copy_deleted_while_a_request_waits_to_load_it_is_not_loaded(
    services: PowerServices,
) -> None:
    """Its weights stay (the original uses them): only the store says it is gone."""
    resolved = services.library.resolve("second")  # as a request does, before loading
    services.library.delete("second")
    with pytest.raises(ModelNotFound):
        services.generate(GenerationRequest(model="second", prompt="Hi", max_tokens=1), resolved)
    assert loaded_names(services) == []


def _endless(services: PowerServices, model: str, **extra: object) -> GenerationStream:
    """A generation that holds its lease until cancelled (its events are never read), or
    for 3000 tokens (half a minute here; a bound should the test fail)."""
    request = GenerationRequest(model=model, prompt="Count to a million", max_tokens=3000)
    for key, value in extra.items():
        setattr(request, key, value)
    return services.generate(request)


def test_the_keep_alive_of_the_request_scheduled_last_decides(services: PowerServices) -> None:
    # as in Ollama: keep_alive 0 sent last unloads, though an earlier request ends after it
    earlier = _endless(services, "first")
    generate(services, "first", keep_alive=0)
    assert loaded_names(services) == ["first:latest"]  # the earlier request still runs
    earlier.cancel()
    deadline = time.monotonic() + 30  # the engine drops the cancelled job at its next step
    while loaded_names(services) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert loaded_names(services) == []


@contextmanager
def steady_requests(services: PowerServices, model: str) -> Iterator[None]:
    """Two clients asking ``model`` one request after another, overlapping, until the
    block ends: the model is never idle meanwhile."""
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            generate(services, model)

    askers = [threading.Thread(target=keep_asking) for _ in range(2)]
    for asker in askers:
        asker.start()
    try:
        yield
    finally:
        stop.set()
        for asker in askers:
            asker.join(60)


def finishes(target: Callable[..., object], *args: object) -> bool:
    """Whether ``target(*args)`` returns within a minute (run on a thread)."""
    thread = threading.Thread(target=target, args=args)
    thread.start()
    thread.join(60)
    return not thread.is_alive()


def test_an_unload_under_steady_requests_is_not_put_off(services: PowerServices) -> None:
    generate(services, "first")
    with steady_requests(services, "first"):
        # new requests wait for it instead of joining the model being unloaded
        assert finishes(services.scheduler.unload, "first:latest"), "put off by the requests"


def test_a_reload_of_one_model_does_not_hold_up_another(tmp_path: Path, model_path: Path) -> None:
    settings = Settings(home=tmp_path, max_loaded_models=2, num_ctx=512, num_parallel=2)
    services = PowerServices(settings, get_registry())
    try:
        services.library.import_gguf(model_path, "first:latest")
        services.library.copy("first:latest", "second:latest")
        generate(services, "second")
        running = _endless(services, "first")
        # another num_ctx reloads first once its running request ends: a long wait
        reload = threading.Thread(target=generate_with, args=(services, "first", {"num_ctx": 256}))
        reload.start()
        time.sleep(0.5)  # the reload waits for the running request
        assert reload.is_alive()
        assert generate(services, "second")  # loaded, idle: answered meanwhile
        assert reload.is_alive()
        running.cancel()
        reload.join(60)
        assert not reload.is_alive()
    finally:
        services.close()


def test_a_reload_waiting_for_a_request_that_never_ends_holds_up_no_other_load(
    tmp_path: Path, model_path: Path
) -> None:
    """The running request stands for a client that stopped reading: its stream never
    ends. The reload waits for it; a model that is not loaded yet loads meanwhile."""
    settings = Settings(home=tmp_path, max_loaded_models=2, num_ctx=512, num_parallel=2)
    services = PowerServices(settings, get_registry())
    try:
        services.library.import_gguf(model_path, "first:latest")
        services.library.copy("first:latest", "second:latest")
        running = _endless(services, "first")
        reload = threading.Thread(target=generate_with, args=(services, "first", {"num_ctx": 256}))
        reload.start()
        time.sleep(0.5)  # the reload waits for the running request
        assert reload.is_alive()
        assert finishes(lambda: generate(services, "second")), "held up behind the reload"
        assert reload.is_alive()
        running.cancel()
        reload.join(60)
        assert not reload.is_alive()
    finally:
        services.close()


def generate_with(services: PowerServices, model: str, load: dict[str, int]) -> None:
    request = GenerationRequest(model=model, prompt="Hi", max_tokens=2, load=load)
    list(services.generate(request))


def test_a_model_to_load_is_not_kept_waiting_by_steady_requests_to_a_busy_one(
    services: PowerServices,
) -> None:
    # one model at a time: "second" needs room that steady requests to "first" never
    # give, unless first stops taking new ones and goes once its running ones end
    generate(services, "first")
    with steady_requests(services, "first"):
        assert finishes(generate, services, "second"), "waited for the requests to first to stop"


def test_several_prompts_in_one_request_beside_a_load_of_another_model(
    tmp_path: Path, model_path: Path
) -> None:
    # a completion with two prompts holds the first lease while it asks for the second;
    # a load of another model that needs the room drains the first model meanwhile. Asked
    # through the scheduler, the second lease waited on the drain, which waited on the
    # first lease: both requests hung, and every later load with them. Under gevent, as
    # the server runs; the first generation lets other greenlets in before the second.
    script = textwrap.dedent(
        f"""
        from gevent import monkey; monkey.patch_all()
        import gevent, os
        from pathlib import Path
        from flask import Flask
        from power_core.config import Settings
        from power_core.plugins import get_registry
        from power_core.services import PowerServices
        from power_core.types import GenerationRequest
        from power_api_openai.completions import create_completion
        settings = Settings(home=Path({str(tmp_path)!r}), max_loaded_models=1, num_ctx=512)
        services = PowerServices(settings, get_registry())
        services.library.import_gguf(Path({str(model_path)!r}), "first:latest")
        services.library.copy("first:latest", "second:latest")
        list(services.generate(GenerationRequest(model="first", prompt="Hi", max_tokens=2)))
        app = Flask("test")

        def completion():
            with app.test_request_context():
                body = {{"model": "first", "prompt": ["a", "b"], "max_tokens": 3}}
                return create_completion(services, body).status_code

        def other():
            request = GenerationRequest(model="second", prompt="Hi", max_tokens=2)
            return len(list(services.generate(request)))

        greenlets = [gevent.spawn(completion), gevent.spawn(other)]
        gevent.joinall(greenlets, timeout=60)
        print("done" if all(g.ready() for g in greenlets) else "hung", greenlets[0].value)
        os._exit(0)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180
    )
    assert result.stdout.split() == ["done", "200"], result.stdout + result.stderr
