"""The models and batches the benchmarks train: MiniLM + LoRA on query/value, Llamas built from a shape, token rows.

Every builder seeds torch, so every arm of a benchmark starts from the same weights. ``smoke``
swaps in the tiny config-built models of :mod:`lit_loraplus.testing` (hidden 32, 2 layers). LoRA
goes on through :func:`lit_loraplus.core.model.apply_lora`, as ``LoraPlusModule`` puts it on. The
LoRA settings (r, α, dropout) have no defaults: each benchmark states the values its results were
measured with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from peft import PeftModel
from torch import Tensor, nn
from transformers import LlamaConfig, LlamaForCausalLM

from benchmarks.harness.shapes import MINILM, MINILM_TARGETS, SMOLLM2_135M
from lit_loraplus.core.model import Task, apply_lora, load_pretrained
from lit_loraplus.testing import tiny_bert, tiny_llama


def classifier(smoke: bool = False, num_labels: int = 2, seed: int = 0) -> nn.Module:
    """The packaged all-MiniLM-L6-v2 with a fresh ``num_labels`` head, or with ``smoke`` the tiny BERT; train mode.

    Args:
        smoke: The tiny config-built BERT of :mod:`lit_loraplus.testing` instead of MiniLM.
        num_labels: Classes of the head.
        seed: Seed of the fresh head (and of the tiny model's weights).
    """
    if smoke:
        return tiny_bert(num_labels=num_labels, seed=seed).train()
    torch.manual_seed(seed)
    return load_pretrained(MINILM, "sequence_classification", num_labels=num_labels)


def llama(layers: int, shape: Mapping[str, Any] = SMOLLM2_135M, smoke: bool = False, seed: int = 0) -> nn.Module:
    """A Llama causal LM built from ``shape`` with ``layers`` decoder layers (random weights), in train mode.

    Args:
        layers: Decoder layers (SmolLM2-135M has 30).
        shape: ``LlamaConfig`` keyword arguments without the layer count (:mod:`benchmarks.harness.shapes`).
        smoke: The tiny config-built Llama of :mod:`lit_loraplus.testing` (2 layers) instead.
        seed: Seed of the weights.
    """
    if smoke:
        return tiny_llama(seed=seed).train()
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(num_hidden_layers=layers, **shape)).train()


def with_lora(
    model: nn.Module, task: Task, targets: Sequence[str], *, r: int, alpha: float, dropout: float
) -> PeftModel:
    """``model`` with a new LoRA adapter on ``targets``, in train mode.

    Args:
        model: A transformers model.
        task: ``sequence_classification`` (the head trains too) or ``causal_lm``.
        targets: Module names LoRA wraps.
        r: LoRA rank.
        alpha: LoRA α (the scaling is α / r).
        dropout: LoRA dropout.
    """
    config = {"r": r, "lora_alpha": alpha, "lora_dropout": dropout, "target_modules": list(targets)}
    return apply_lora(model, task, config).train()


def minilm_lora(*, r: int, alpha: float, dropout: float, smoke: bool = False, num_labels: int = 2) -> PeftModel:
    """MiniLM (:func:`classifier`) with LoRA on query/value: the model most benchmarks here time.

    Args:
        r: LoRA rank.
        alpha: LoRA α.
        dropout: LoRA dropout.
        smoke: The tiny BERT instead of MiniLM.
        num_labels: Classes of the fresh head.
    """
    base = classifier(smoke, num_labels)
    return with_lora(base, "sequence_classification", MINILM_TARGETS, r=r, alpha=alpha, dropout=dropout)


def token_rows(
    rows: int, seq: int, vocab: int, task: Task = "sequence_classification", seed: int = 0
) -> dict[str, Tensor]:
    """Seeded synthetic rows: ``input_ids`` (rows, seq) from ``[0, vocab)`` and ``labels``.

    Args:
        rows: Number of rows.
        seq: Tokens per row.
        vocab: Token ids are drawn below it (the model's vocabulary size).
        task: ``sequence_classification`` (random 0/1 labels, (rows,)) or ``causal_lm`` (labels = input ids).
        seed: Seed of the draws (the ids first, then the labels).

    Returns:
        ``{"input_ids": Tensor, "labels": Tensor}``.
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (rows, seq), generator=g)
    labels = ids.clone() if task == "causal_lm" else torch.randint(0, 2, (rows,), generator=g)
    return {"input_ids": ids, "labels": labels}


def split_batches(columns: Mapping[str, Tensor], batch: int) -> list[dict[str, Tensor]]:
    """Consecutive batches of ``batch`` rows of ``columns`` (a partial last batch is dropped)."""
    rows = len(next(iter(columns.values())))
    return [{k: v[i : i + batch] for k, v in columns.items()} for i in range(0, rows - batch + 1, batch)]
