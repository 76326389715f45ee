"""LoRA adapters: GGUF files (``general.type`` ``adapter``) applied on top of a model's
weights, as Ollama's Modelfile ``ADAPTER`` and ``/api/create`` ``adapters`` add them.

A model's adapters are layers of its manifest (``application/vnd.ollama.image.adapter``),
handed to the backend in :attr:`power_core.engine.LoadSpec.adapters`. :func:`check_adapter`
refuses at create time what the GGUF LoRA format (llama.cpp's) rules out at every load:
another kind of file, an adapter for another architecture, or tensors the model does not
have or whose shapes do not fit it (an adapter trained for another model of the same
architecture); and what a backend says it cannot apply (its optional ``adapter_problem``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from power_core.engine import Backend
from power_core.errors import InvalidRequest
from power_core.gguf import GGML_TYPE_SIZES, GGUFInfo, TensorInfo, read_gguf_info
from power_core.store.base import StoredBlob

_SUFFIXES = (".lora_a", ".lora_b")
_TOKEN_EMBEDDINGS = "token_embd.weight"
#: tensors a LoRA file may carry beside its pairs, which llama.cpp passes over
_IGNORED_SUFFIX = "_norm.weight"


@dataclass(frozen=True)
class AdapterSource:
    """One adapter a create adds: a file to copy in, or a blob already stored."""

    #: how the request named it (a path, or a file name of ``adapters``), for messages
    label: str
    source: Path | StoredBlob


def is_adapter(info: GGUFInfo) -> bool:
    """Whether a GGUF file is an adapter rather than a model."""
    return info.metadata.get("general.type") == "adapter"


def check_adapter(
    label: str, adapter: GGUFInfo, model: GGUFInfo, backends: Iterable[Backend] = ()
) -> None:
    """Raise :class:`InvalidRequest` unless ``adapter`` is a GGUF LoRA adapter that fits the
    weights ``model`` describes, and none of ``backends`` (their optional
    ``adapter_problem``) knows a reason it cannot apply it."""

    def refuse(reason: str) -> InvalidRequest:
        return _refusal(label, reason)

    kind = adapter.metadata.get("general.type")
    if kind != "adapter":
        raise refuse(f"is not an adapter (general.type {kind!r}): give a GGUF LoRA adapter")
    adapter_type = adapter.metadata.get("adapter.type")
    if adapter_type != "lora":
        raise refuse(f"is a {adapter_type!r} adapter; only LoRA adapters are supported")
    alpha = adapter.metadata.get("adapter.lora.alpha", 0.0)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float):
        raise refuse(f"has an adapter.lora.alpha that is not a number: {alpha!r}")
    if adapter.architecture != model.architecture:
        raise refuse(
            f"is for {adapter.architecture or 'an unnamed'} models; "
            f"this model is {model.architecture or 'unnamed'}"
        )
    pairs = _pairs(label, adapter.tensors)
    if not pairs:
        raise refuse("holds no LoRA tensors")
    weights = {tensor.name: tensor for tensor in model.tensors}
    for name, (lora_a, lora_b) in sorted(pairs.items()):
        target = weights.get(name)
        if target is None:
            raise refuse(f"changes {name!r}, which this model does not have (another model's?)")
        for half in (lora_a, lora_b):
            block = GGML_TYPE_SIZES[half.type][0]
            if half.shape[0] % block:
                raise refuse(
                    f"has {half.name!r} of {half.shape[0]} columns, which its type stores "
                    f"in blocks of {block}"
                )
        if not _fits(name, target, lora_a, lora_b):
            raise refuse(
                f"has {name!r} shaped {_shape(lora_a)} x {_shape(lora_b)}, which does not fit "
                f"the model's {_shape(target)} (an adapter for another model?)"
            )
    for backend in backends:
        problem = getattr(backend, "adapter_problem", None)
        reason = problem(set(pairs), model) if problem is not None else None
        if reason:
            raise refuse(reason)


def check_stored_adapters(weights: Path, adapters: Sequence[Path], backend: Backend) -> None:
    """:func:`check_adapter` for each of a stored model's adapters, before a load: a model
    created elsewhere (pulled, or written by Ollama) was not checked when it was made, and
    a backend may abort the process on an adapter it accepts (llama.cpp, on shared token
    embeddings)."""
    if not adapters:
        return
    model = read_gguf_info(weights)
    for path in adapters:
        check_adapter(path.name, read_gguf_info(path), model, [backend])


def _refusal(label: str, reason: str) -> InvalidRequest:
    return InvalidRequest(f"adapter '{label}' {reason}", param="adapters")


def _pairs(label: str, tensors: list[TensorInfo]) -> dict[str, tuple[TensorInfo, TensorInfo]]:
    """The ``(lora_a, lora_b)`` pairs of an adapter's tensors, by the tensor they change."""
    halves: dict[str, dict[str, TensorInfo]] = {}
    for tensor in tensors:
        suffix = next((s for s in _SUFFIXES if tensor.name.endswith(s)), None)
        if suffix is None:
            if tensor.name.endswith(_IGNORED_SUFFIX):
                continue
            raise _refusal(label, f"has tensor {tensor.name!r}, which is not half of a LoRA pair")
        halves.setdefault(tensor.name[: -len(suffix)], {})[suffix] = tensor
    pairs: dict[str, tuple[TensorInfo, TensorInfo]] = {}
    for name, half in halves.items():
        if len(half) != 2:
            missing = next(s for s in _SUFFIXES if s not in half)
            raise _refusal(label, f"has no {name + missing!r} to pair with its other half")
        pairs[name] = (half[".lora_a"], half[".lora_b"])
    return pairs


def _dims(tensor: TensorInfo) -> tuple[int, int]:
    shape = (*tensor.shape, 1)
    return shape[0], shape[1]


def _fits(name: str, target: TensorInfo, lora_a: TensorInfo, lora_b: TensorInfo) -> bool:
    """llama.cpp's shape rule (``llama_adapter_lora_init``): ``W`` of ``n_in x n_out``
    takes ``a`` of ``n_in x r`` and ``b`` of ``r x n_out``; the token embeddings, looked up
    rather than multiplied, take them the other way round."""
    (w0, w1), (a0, a1), (b0, b1) = _dims(target), _dims(lora_a), _dims(lora_b)
    if name == _TOKEN_EMBEDDINGS:
        return w0 == b1 and w1 == a1
    return w0 == a0 and w1 == b1 and a1 == b0


def _shape(tensor: TensorInfo) -> str:
    return "[" + ", ".join(str(dim) for dim in tensor.shape) + "]"
