"""Find the trainable LoRA adapters of a model and snapshot their A/B matrices (shared by the monitors).

Pure torch + PEFT, no Lightning. A layer is found by class (``peft.tuners.lora.LoraLayer``), never by
parameter name, and only its *active, trainable* adapters count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import torch
from peft.tuners.lora import LoraLayer
from torch import Tensor, nn

_PEFT_PREFIX = "base_model.model."
Kind = Literal["linear", "embedding", "other"]


@dataclass(frozen=True)
class LoraAdapter:
    """One active, trainable adapter of one PEFT LoRA layer.

    Attributes:
        name: Short stable name: the module path after ``base_model.model.`` (e.g.
            ``bert.encoder.layer.0.attention.self.query``), plus ``@<adapter>`` unless the adapter is
            ``default``.
        module: The ``LoraLayer`` that owns the adapter.
        A: The A matrix, (r, in) for linear layers, (r, V) for embeddings (``lora_embedding_A``).
        B: The B matrix, (out, r) for linear layers, (d, r) for embeddings (``lora_embedding_B``).
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


def _adapter(path: str, module: LoraLayer, adapter: str) -> LoraAdapter | None:
    if adapter in module.lora_A:
        A, B = module.lora_A[adapter].weight, module.lora_B[adapter].weight
        kind: Kind = "linear" if isinstance(module.lora_A[adapter], nn.Linear) else "other"
    elif adapter in module.lora_embedding_A:
        A, B, kind = module.lora_embedding_A[adapter], module.lora_embedding_B[adapter], "embedding"
    else:
        return None
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
