"""A model's Modelfile parameters that shape its load (``num_ctx``) apply when it loads,
under a request's own options, as in Ollama."""

from __future__ import annotations

from pathlib import Path

import ollama
import pytest

from conftest import PowerServer
from registry_server import RegistryServer


def loaded_context(client: ollama.Client, name: str) -> int | None:
    for model in client.ps().models:
        if model.model == name:
            return model.context_length
    return None


def test_a_models_num_ctx_is_the_context_it_loads_with(client: ollama.Client) -> None:
    name = "smollm2-ctx1024:test"
    client.create(name, from_="smollm2:135m", parameters={"num_ctx": 1024, "temperature": 0})
    try:
        client.generate(name, "Say hi", options={"num_predict": 2})
        assert loaded_context(client, name) == 1024
        # the request's own option wins over the model's
        client.generate(name, "Say hi", options={"num_predict": 2, "num_ctx": 1536})
        assert loaded_context(client, name) == 1536
        # back to the model's context: a longer prompt is cut to fit it, as Ollama cuts it
        long_prompt = "word " * 1200
        answer = client.generate(name, long_prompt, options={"num_predict": 1})
        assert answer.prompt_eval_count is not None and answer.prompt_eval_count < 1024
    finally:
        client.delete(name)


def test_a_parameter_no_load_takes_is_left_out_not_fatal(client: ollama.Client) -> None:
    # num_thread 0 is Ollama's "automatic"; a model's own parameter must not fail requests
    name = "smollm2-autothreads:test"
    client.create(name, from_="smollm2:135m", parameters={"num_thread": 0, "num_ctx": 0})
    try:
        answer = client.generate(name, "Say hi", options={"num_predict": 2})
        assert answer.done
        assert loaded_context(client, name) == 2048  # the test server's configured context
    finally:
        client.delete(name)


def test_a_load_parameter_no_load_could_take_is_refused_at_create_and_left_out_after(
    client: ollama.Client, real_gguf_copy: Path
) -> None:
    """num_thread 100000 (ggml takes 512 at most): made by create, every request to the
    model would fail; come from a registry, it is left out, as num_thread 0 is."""
    with pytest.raises(ollama.ResponseError, match="num_thread must be at most 512") as refused:
        client.create("threads:many", from_="smollm2:135m", parameters={"num_thread": 100000})
    assert refused.value.status_code == 400
    registry = RegistryServer()
    try:
        params = b'{"num_thread": 100000}'
        registry.add_model("threads", "many", real_gguf_copy.read_bytes(), {"params": params})
        name = registry.name("threads", "many")
        client.pull(name)
    finally:
        registry.close()
    assert client.generate(name, "Say hi", options={"num_predict": 2}).done
    client.delete(name)


def gpus_seen() -> bool:
    """Whether this machine's llama.cpp offloads to a GPU (the server's is the same one)."""
    from power_backend_llamacpp.devices import list_gpus

    return bool(list_gpus())


def test_gpu_options_load_the_model_and_ps_says_where_it_is(client: ollama.Client) -> None:
    """num_gpu, main_gpu and use_mlock are load options, as in Ollama: a change reloads
    the model. Without a GPU the model runs on the CPU whatever num_gpu asks for, and
    ps reports none of it in VRAM."""
    name = "smollm2:135m"
    for options in ({"num_gpu": 0}, {"num_gpu": 99, "main_gpu": 0, "use_mlock": True}):
        answer = client.generate(name, "Say hi", options={"num_predict": 2, **options})
        assert answer.done
        entry = next(model for model in client.ps().models if model.model == name)
        assert entry.size is not None and entry.size > 0
        if options["num_gpu"] == 0 or not gpus_seen():
            assert entry.size_vram == 0
        else:
            assert 0 < (entry.size_vram or 0) <= entry.size


def test_the_first_load_says_where_models_run(
    client: ollama.Client, power_server: PowerServer
) -> None:
    assert client.generate("smollm2:135m", "Say hi", options={"num_predict": 1}).done
    expected = "offloads layers to " if gpus_seen() else "offloads to no GPU: models run on"
    assert power_server.log().count("llama.cpp offloads") == 1
    assert expected in power_server.log()


def test_gpu_options_of_the_wrong_kind_are_refused(client: ollama.Client) -> None:
    for options, message in (
        ({"main_gpu": -1}, "option 'main_gpu' must not be negative"),
        ({"num_gpu": "all"}, "option 'num_gpu' must be an integer"),
        ({"use_mlock": "yes"}, "option 'use_mlock' must be true or false"),
    ):
        with pytest.raises(ollama.ResponseError, match=message) as refused:
            client.generate("smollm2:135m", "Say hi", options={"num_predict": 1, **options})
        assert refused.value.status_code == 400


def test_a_models_num_gpu_parameter_is_a_load_option(client: ollama.Client) -> None:
    """PARAMETER num_gpu 0 (a model kept on the CPU) and -1 (as many layers as fit)."""
    for layers in (0, -1):
        name = f"smollm2-gpu{layers}:test"
        client.create(name, from_="smollm2:135m", parameters={"num_gpu": layers})
        try:
            assert client.generate(name, "Say hi", options={"num_predict": 2}).done
            entry = next(model for model in client.ps().models if model.model == name)
            if layers == 0 or not gpus_seen():
                assert entry.size_vram == 0
            else:
                assert 0 < (entry.size_vram or 0) <= (entry.size or 0)
        finally:
            client.delete(name)
