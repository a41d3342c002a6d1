"""PEFT's LoRA layout: the only module that knows PEFT's attribute names, and LoRA-layer discovery.

PEFT stores a LoRA layer's matrices in per-adapter containers named ``lora_A``, ``lora_B``,
``lora_embedding_A``, ``lora_embedding_B`` and ``lora_magnitude_vector`` (DoRA), a
``modules_to_save`` copy in ``ModulesToSaveWrapper.modules_to_save`` and trainable-token deltas
in ``trainable_tokens_delta``. Everything else in the package asks this module, so a PEFT rename
is a one-file change. Layers are found by class (``peft.tuners.lora.LoraLayer``), never by a
substring of a parameter name, and only *active, trainable* adapters count.

Pure torch + PEFT, no Lightning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from peft.tuners.lora import LoraLayer
from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
from peft.utils import ModulesToSaveWrapper
from torch import Tensor, nn

Part = Literal["A", "B", "embedding_A", "embedding_B", "magnitude"]
Kind = Literal["linear", "embedding", "other"]
# LoraLayer attribute -> part. Each attribute is a ModuleDict/ParameterDict keyed by adapter name.
_PARTS: dict[str, Part] = {
    "lora_A": "A",
    "lora_B": "B",
    "lora_embedding_A": "embedding_A",
    "lora_embedding_B": "embedding_B",
    "lora_magnitude_vector": "magnitude",
}
_PEFT_PREFIX = "base_model.model."


def lora_layer_parameters(layer: LoraLayer) -> Iterator[tuple[Part, str, nn.Parameter]]:
    """Every parameter a LoRA layer adds, with its part and its local name.

    Args:
        layer: A PEFT ``LoraLayer``.

    Yields:
        ``(part, local name, parameter)``; the local name is relative to the part's container, e.g.
        ``default.weight`` or ``default.bias`` (B's bias with ``lora_bias=True``).
    """
    for attr, part in _PARTS.items():
        for local, param in getattr(layer, attr).named_parameters():
            yield part, local, param


def saved_copy_modules(wrapper: ModulesToSaveWrapper) -> Iterator[nn.Module]:
    """The modules inside the trainable copies of a ``modules_to_save`` wrapper (a head, ...)."""
    yield from wrapper.modules_to_save.modules()


def regression_head_bias(model: nn.Module) -> tuple[str, nn.Parameter]:
    """The output bias of a regression head: the one trainable linear layer with a single output and a bias
    inside a ``modules_to_save`` copy (``classifier`` of BERT-like models, ``classifier.out_proj`` of RoBERTa).

    Args:
        model: A PEFT model that trains its head as a ``modules_to_save`` copy.

    Returns:
        ``(name, bias)``: the bias's short parameter name (as :func:`short_name` gives it) and the parameter of the
        trainable copy (the original module's bias is left alone).

    Raises:
        ValueError: If the trainable copies hold no such layer (a classifier with several outputs, a head without a
            bias) or several.
    """
    found = [
        (short_name(f"{path}.modules_to_save.{local}.bias"), module.bias)
        for path, wrapper in model.named_modules()
        if isinstance(wrapper, ModulesToSaveWrapper)
        for local, module in wrapper.modules_to_save.named_modules()
        if isinstance(module, nn.Linear) and module.out_features == 1
        and module.bias is not None and module.bias.requires_grad
    ]  # fmt: skip
    if len(found) != 1:
        heads = [short_name(path) for path, m in model.named_modules() if isinstance(m, ModulesToSaveWrapper)]
        raise ValueError(
            f"`head_bias='label_mean'` sets the bias of a regression head (a trained linear layer with one output "
            f"and a bias), but the trained head modules {heads} hold {len(found)} such layers: set "
            "`head_bias='model'`, or give the model a one-output head with a bias (num_labels=1)."
        )
    return found[0]


def token_delta_parameters(layer: TrainableTokensLayer) -> Iterator[nn.Parameter]:
    """The trainable-token deltas of a ``trainable_token_indices`` layer."""
    yield from layer.trainable_tokens_delta.parameters()


def peft_compat_groups(model: nn.Module) -> dict[str, str]:
    """PEFT's own placement (``peft.optimizers.create_loraplus_optimizer``), quirks included.

    Reproduced rule for rule so that users who migrate get identical learning rates: parameters
    of a LoRA ``Embedding`` layer go to ``embedding``; a name containing ``lora_B`` *or any 1-D
    parameter* (biases, norm weights, DoRA magnitudes, the head's bias) goes to the B groups, split
    by PEFT's decay rule (not inside an ``nn.LayerNorm``, no ``bias`` in the name); the rest to A.

    Args:
        model: A PEFT LoRA model.

    Returns:
        ``{parameter name: group}`` with groups ``groupA``, ``embedding``, ``groupB`` and
        ``groupB_no_decay`` (PEFT's names), trainable parameters only.
    """
    from peft.tuners.lora import Embedding as LoraEmbedding
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
    from transformers.trainer_pt_utils import get_parameter_names

    decay_names = {n for n in get_parameter_names(model, ALL_LAYERNORM_LAYERS) if "bias" not in n}
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        owner_name = ".".join(name.split(".")[:-2])
        owner = model.get_submodule(owner_name) if owner_name else None
        if isinstance(owner, LoraEmbedding):
            groups[name] = "embedding"
        elif "lora_B" in name or param.ndim == 1:  # PEFT's rule: a substring, and every 1-D parameter
            groups[name] = "groupB" if name in decay_names else "groupB_no_decay"
        else:
            groups[name] = "groupA"
    return groups


@dataclass(frozen=True)
class LoraAdapter:
    """One active, trainable adapter of one PEFT LoRA layer.

    Attributes:
        name: Short stable name: the module path after ``base_model.model.`` (e.g.
            ``bert.encoder.layer.0.attention.self.query``), plus ``@<adapter>`` unless the adapter is
            ``default``.
        module: The ``LoraLayer`` that owns the adapter.
        A: The A matrix, (r, in) for linear layers, (r, V) for embeddings.
        B: The B matrix, (out, r) for linear layers, (d, r) for embeddings.
        scaling: α/r (times the layer's ``embed_scale`` for scaled embeddings).
        kind: ``linear`` (input Z is a feature vector), ``embedding`` (input is token ids) or
            ``other`` (e.g. convolutions: update norms only).
        dora: Whether the adapter is DoRA (the magnitude vector is not tracked).
    """

    name: str
    module: nn.Module
    A: Tensor
    B: Tensor
    scaling: float
    kind: Kind
    dora: bool


def short_name(path: str) -> str:
    """``model.base_model.model.bert.encoder...query`` -> ``bert.encoder...query``."""
    return path.split(_PEFT_PREFIX, 1)[1] if _PEFT_PREFIX in path else path


def adapter_matrices(layer: LoraLayer, adapter: str) -> tuple[Tensor, Tensor, Kind] | None:
    """``(A, B, kind)`` of one adapter of a LoRA layer, or None if the layer has no such adapter.

    Args:
        layer: A PEFT ``LoraLayer``.
        adapter: The adapter name (``default``).
    """
    if adapter in layer.lora_A:
        kind: Kind = "linear" if isinstance(layer.lora_A[adapter], nn.Linear) else "other"
        return layer.lora_A[adapter].weight, layer.lora_B[adapter].weight, kind
    if adapter in layer.lora_embedding_A:
        return layer.lora_embedding_A[adapter], layer.lora_embedding_B[adapter], "embedding"
    return None


def _adapter(path: str, module: LoraLayer, adapter: str) -> LoraAdapter | None:
    if (found := adapter_matrices(module, adapter)) is None:
        return None
    A, B, kind = found
    if not (A.requires_grad and B.requires_grad):
        return None
    scaling = float(module.scaling[adapter])
    embed_scale = module._get_embed_scale() if kind == "embedding" and hasattr(module, "_get_embed_scale") else None
    if embed_scale is not None:  # e.g. Gemma's scaled embeddings multiply the LoRA output too
        scaling *= float(embed_scale)
    dora = bool(getattr(module, "use_dora", {}).get(adapter, False))
    name = short_name(path) + ("" if adapter == "default" else f"@{adapter}")
    return LoraAdapter(name, module, A, B, scaling, kind, dora)


def find_lora_adapters(model: nn.Module) -> list[LoraAdapter]:
    """Every active, trainable LoRA adapter in ``model``, in module order.

    Args:
        model: Any module containing PEFT LoRA layers (a LightningModule, a ``PeftModel``, ...).

    Returns:
        One :class:`LoraAdapter` per (layer, active adapter) whose A and B both require grad;
        layers with adapters disabled or merged are skipped.
    """
    found = []
    for path, module in model.named_modules():
        if not isinstance(module, LoraLayer) or module.disable_adapters or module.merged:
            continue
        for adapter in module.active_adapters:
            if (info := _adapter(path, module, adapter)) is not None:
                found.append(info)
    return found


def select_adapters(model: nn.Module, pattern: str | None, owner: str) -> list[LoraAdapter]:
    """The adapters of ``model`` whose short name matches ``pattern`` (``re.search``).

    Args:
        model: The model to search.
        pattern: A regular expression over :attr:`LoraAdapter.name`; ``None`` keeps all.
        owner: The caller's name, quoted in errors.

    Returns:
        The matching adapters (at least one).

    Raises:
        ValueError: If the model has no trainable LoRA adapter, or ``pattern`` matches none (the
            available names are listed).
    """
    adapters = find_lora_adapters(model)
    if not adapters:
        raise ValueError(
            f"{owner} found no active, trainable PEFT LoRA layer in {type(model).__name__}. Wrap the model with "
            "`peft.get_peft_model(model, LoraConfig(...))` before training."
        )
    if pattern is None:
        return adapters
    chosen = [a for a in adapters if re.search(pattern, a.name)]
    if not chosen:
        raise ValueError(
            f"{owner}(layers={pattern!r}) matches no LoRA layer. Available layers: {[a.name for a in adapters]}."
        )
    return chosen


def matrices(adapters: list[LoraAdapter]) -> list[Tensor]:
    """A of every adapter, then B of every adapter: the layout of every per-layer list the monitors keep."""
    return [a.A for a in adapters] + [a.B for a in adapters]


def snapshot(tensors: list[Tensor]) -> list[Tensor]:
    """Detached copies of ``tensors`` on their device (no host synchronisation)."""
    with torch.no_grad():
        return [t.detach().clone() for t in tensors]
