"""Images through the official ``ollama`` client, on the real SmolLM2 with a tiny random
projector (``tiny_projector``): llama.cpp's libmtmd encodes each image and the model reads
its embeddings. The projector's weights are random, so what is checked is that images are
read, where, and as themselves: the same image gives the same answer, another image another,
an image takes its tokens in the prompt, and what cannot be read is a 400."""

from __future__ import annotations

import threading
from pathlib import Path

import ollama
import pytest
import requests

from conftest import TEST_MODEL_NAME, PowerServer
from registry_server import RegistryServer
from tiny_projector import (
    N_IMAGE_TOKENS,
    create_seeing_model,
    tiny_png,
    write_tiny_projector,
    write_tiny_slicing_projector,
)

pytestmark = pytest.mark.model

GREEDY = {"temperature": 0, "num_predict": 12}
QUESTION = "What is in this picture?"
#: what SmolLM2's template puts first in a conversation without a system message
SYSTEM = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n"
)


def chat(
    client: ollama.Client, model: str, images: list[bytes], text: str = QUESTION
) -> ollama.ChatResponse:
    message = {"role": "user", "content": text, "images": images}
    return client.chat(model=model, messages=[message], options=GREEDY)


def test_a_model_with_a_projector_shows_vision_and_the_projector(
    client: ollama.Client, url: str, seeing_model: str
) -> None:
    shown = client.show(seeing_model)
    assert "vision" in (shown.capabilities or [])
    assert (shown.modelfile or "").count("\nFROM ") == 2
    assert "vision" not in (client.show(TEST_MODEL_NAME).capabilities or [])
    # the client has no field for it: Ollama's projector_info, read raw
    raw = requests.post(f"{url}/api/show", json={"model": seeing_model}, timeout=30).json()
    assert raw["projector_info"]["general.architecture"] == "clip"
    assert (
        "projector_info"
        not in requests.post(f"{url}/api/show", json={"model": TEST_MODEL_NAME}, timeout=30).json()
    )


def test_an_image_is_read_as_itself(client: ollama.Client, seeing_model: str) -> None:
    first, second = tiny_png(1), tiny_png(2)
    answer = chat(client, seeing_model, [first])
    assert answer.message.content
    assert chat(client, seeing_model, [first]).message.content == answer.message.content
    assert chat(client, seeing_model, [second]).message.content != answer.message.content
    # the image takes its tokens where its tag was ("[img-0]" before the text)
    text_only = chat(client, seeing_model, [])
    assert answer.prompt_eval_count == (text_only.prompt_eval_count or 0) + N_IMAGE_TOKENS
    assert text_only.message.content != answer.message.content


def test_two_images_in_one_message_and_across_turns(
    client: ollama.Client, seeing_model: str
) -> None:
    first, second = tiny_png(1), tiny_png(2)
    both = chat(client, seeing_model, [first, second], "Compare [img] with [img].")
    swapped = chat(client, seeing_model, [second, first], "Compare [img] with [img].")
    assert both.prompt_eval_count == swapped.prompt_eval_count
    assert both.message.content != swapped.message.content
    turns = [
        {"role": "user", "content": "Look.", "images": [first]},
        {"role": "assistant", "content": "I see it."},
        {"role": "user", "content": "And now?", "images": [second]},
    ]
    reply = client.chat(model=seeing_model, messages=turns, options=GREEDY)
    text_turns = [{k: v for k, v in turn.items() if k != "images"} for turn in turns]
    text_reply = client.chat(model=seeing_model, messages=text_turns, options=GREEDY)
    assert reply.prompt_eval_count == (text_reply.prompt_eval_count or 0) + 2 * N_IMAGE_TOKENS


def test_generate_reads_images_as_chat_does_and_raw_prompts_place_them(
    client: ollama.Client, seeing_model: str
) -> None:
    image = tiny_png(3)
    chatted = chat(client, seeing_model, [image])
    generated = client.generate(model=seeing_model, prompt=QUESTION, images=[image], options=GREEDY)
    assert generated.response == chatted.message.content
    raw = SYSTEM + "<|im_start|>user\n[img-0]" + QUESTION + "<|im_end|>\n<|im_start|>assistant\n"
    placed = client.generate(
        model=seeing_model, prompt=raw, images=[image], raw=True, options=GREEDY
    )
    assert placed.response == chatted.message.content
    # a raw prompt without the tag has the image first
    untagged = "<|im_start|>user\n" + QUESTION + "<|im_end|>\n<|im_start|>assistant\n"
    first = client.generate(
        model=seeing_model, prompt=untagged, images=[image], raw=True, options=GREEDY
    )
    tagged_first = client.generate(
        model=seeing_model, prompt="[img-0]" + untagged, images=[image], raw=True, options=GREEDY
    )
    assert first.response == tagged_first.response


def test_simultaneous_requests_each_read_their_own_image(
    client: ollama.Client, seeing_model: str
) -> None:
    images = [tiny_png(seed) for seed in (4, 5, 6)]
    alone = [chat(client, seeing_model, [image]).message.content for image in images]
    together: list[str | None] = [None] * len(images)

    def ask(index: int) -> None:
        together[index] = chat(client, seeing_model, [images[index]]).message.content

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone


def test_images_that_cannot_be_read_are_a_400(client: ollama.Client, seeing_model: str) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        chat(client, seeing_model, [b"this is not an image"])
    assert refused.value.status_code == 400
    assert "image 0 could not be read" in refused.value.error
    with pytest.raises(ollama.ResponseError) as blind:
        chat(client, TEST_MODEL_NAME, [tiny_png(1)])
    assert blind.value.status_code == 400
    assert "does not support images" in blind.value.error
    with pytest.raises(ollama.ResponseError) as last:
        client.generate(model=seeing_model, prompt="look: [img-0]", images=[tiny_png(1)], raw=True)
    assert last.value.status_code == 400
    assert "must not end with an image" in last.value.error
    assert chat(client, seeing_model, [tiny_png(1)]).message.content  # still serving


def test_a_model_pulled_with_a_projector_layer_reads_images(
    client: ollama.Client, seeing_model: str, model_path: Path, tmp_path: Path
) -> None:
    """As ``ollama pull llava``: the registry's manifest has a projector layer."""
    projector = write_tiny_projector(tmp_path / "mmproj.gguf").read_bytes()
    registry = RegistryServer()
    try:
        registry.add_model("looking", "tiny", model_path.read_bytes(), {"projector": projector})
        name = registry.name("looking", "tiny")
        client.pull(name)
        assert "vision" in (client.show(name).capabilities or [])
        image = tiny_png(13)
        pulled = chat(client, name, [image]).message.content
        assert pulled == chat(client, seeing_model, [image]).message.content
    finally:
        registry.close()
    client.delete(name)


def test_a_long_chat_with_images_drops_its_oldest_turns_counting_each_image(
    client: ollama.Client, power_server: PowerServer, model_path: Path, tmp_path: Path
) -> None:
    """Images that take 64 tokens each: eight turns of them do not fit 512 tokens of
    context, so the oldest turns go, as they would for text; counted as their tags' text
    instead, the conversation would seem to fit and be refused as too long."""
    name = create_seeing_model(power_server.url, model_path, tmp_path, "seeing:wide", 128)
    turns: list[dict[str, object]] = []
    for seed in range(8):
        turns.append({"role": "user", "content": f"Picture {seed}?", "images": [tiny_png(seed)]})
        turns.append({"role": "assistant", "content": "A picture."})
    turns.append({"role": "user", "content": "And this one?", "images": [tiny_png(99)]})
    options = {"temperature": 0, "num_predict": 8, "num_ctx": 512}
    reply = client.chat(model=name, messages=turns, options=options)
    assert reply.message.content
    assert reply.prompt_eval_count is not None and 64 < reply.prompt_eval_count <= 512 - 8
    last_only = client.chat(model=name, messages=turns[-1:], options=options)
    assert reply.prompt_eval_count > (last_only.prompt_eval_count or 0)
    client.delete(name)


def test_a_projector_the_model_cannot_use_leaves_it_reading_text(
    client: ollama.Client, power_server: PowerServer, model_path: Path, tmp_path: Path
) -> None:
    """A SmolVLM projector on SmolLM2: stored (its width fits), but it frames images with
    tokens SmolLM2 lacks, so the model loads reading text, and images are a 400 saying so."""
    projector = write_tiny_slicing_projector(tmp_path / "idefics.gguf")
    files = {}
    for filename, path in (("model.gguf", model_path), ("mmproj.gguf", projector)):
        files[filename] = client.create_blob(path)
    client.create(model="seeing:sliced", files=files)
    options = {"temperature": 0, "num_predict": 4}
    said = client.chat(
        model="seeing:sliced", messages=[{"role": "user", "content": "Hi"}], options=options
    )
    assert said.message.content
    with pytest.raises(ollama.ResponseError) as refused:
        chat(client, "seeing:sliced", [tiny_png(1)])
    assert refused.value.status_code == 400
    assert "its projector could not be loaded" in refused.value.error
    client.delete("seeing:sliced")
