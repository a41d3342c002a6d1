"""Adapter-only checkpoints: trainable weights only, an explicit completeness check.

A 7B run saves megabytes, not gigabytes: frozen base weights never enter a checkpoint. Because
loading is therefore non-strict, :func:`check_trainable_keys` makes a missing adapter key an
error instead of a silently untrained adapter. ``LoraPlusModule`` also stores the random
generators' state under :data:`RNG_KEY` (:mod:`lit_loraplus.core.rng`) for exact resume, and the
record of an ``lr``/``ratio="auto"`` search under :data:`SEARCH_KEY`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from lit_loraplus.core.checks import is_positive
from lit_loraplus.core.roles import parameter_roles
from lit_loraplus.core.search import AUTO
from lit_loraplus.training.distributed import clean_name

RNG_KEY = "lit_loraplus_rng"
SEARCH_KEY = "lit_loraplus_search"


def auto_choice(hparams: Mapping[str, Any], checkpoint: Mapping[str, Any]) -> dict[str, float]:
    """The values a checkpoint's run trained with for the settings that are ``"auto"`` in ``hparams``.

    Args:
        hparams: The module's hyperparameters (as built from the config: ``"auto"`` where it searches).
        checkpoint: The checkpoint being loaded (its ``hyper_parameters`` hold the values chosen).

    Returns:
        ``{"lr": ..., "ratio": ...}`` for each ``"auto"`` setting the checkpoint has a number for.
    """
    saved = checkpoint.get("hyper_parameters") or {}
    return {k: saved[k] for k in ("lr", "ratio") if hparams.get(k) == AUTO and is_positive(saved.get(k))}


def trainable_keys(module: nn.Module) -> set[str]:
    """``state_dict`` keys of the trainable parameters of ``module``.

    Args:
        module: The LightningModule.

    Returns:
        Parameter names with ``requires_grad``, without the segments FSDP/activation-checkpoint wrappers
        insert (the gathered full state dict under FSDP uses the unwrapped names).
    """
    return {clean_name(name) for name, param in module.named_parameters() if param.requires_grad}


def trainable_state(module: nn.Module, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keep only the trainable parameters (adapters, saved modules) of a full state dict.

    Args:
        module: The LightningModule.
        state_dict: Its full state dict.

    Returns:
        The trimmed state dict.
    """
    keep = trainable_keys(module)
    return {k: v for k, v in state_dict.items() if k in keep}


def check_trainable_keys(module: nn.Module, state_dict: dict[str, Tensor]) -> None:
    """Refuse a checkpoint that lacks a trainable key (non-strict loading would hide it).

    Args:
        module: The LightningModule, built.
        state_dict: The checkpoint's state dict.

    Raises:
        KeyError: Naming the missing keys (at most five) and how many there are.
    """
    missing = sorted(trainable_keys(module) - state_dict.keys())
    if missing:
        raise KeyError(
            f"The checkpoint lacks {len(missing)} trainable (adapter) weight(s), e.g. {missing[:5]}. It was "
            "written for another LoRA configuration (r, target_modules, modules_to_save) or is damaged; "
            "load it with the settings it was trained with."
        )


def check_trainable_shapes(module: nn.Module, state_dict: dict[str, Tensor]) -> None:
    """Refuse a checkpoint whose adapter weights have other shapes than the module's (another LoRA rank or model).

    Args:
        module: The LightningModule, built.
        state_dict: The checkpoint's state dict.

    Raises:
        ValueError: Naming a mismatched weight with both shapes and, for a LoRA A matrix, both ranks.
    """
    roles = parameter_roles(module)
    for name, param in module.named_parameters():
        key = clean_name(name)
        saved = state_dict.get(key)
        if not param.requires_grad or saved is None or tuple(saved.shape) == tuple(param.shape):
            continue
        rank = ""
        if roles[name].role == "lora_A":  # A is (r, in): its first dimension is the rank
            rank = f" The checkpoint's LoRA rank is {saved.shape[0]}, this module's r is {param.shape[0]}."
        raise ValueError(
            f"The checkpoint does not fit this model: {key} is {tuple(saved.shape)} in the checkpoint and "
            f"{tuple(param.shape)} here.{rank} Load it with the settings it was trained with (`model.r`, "
            "`model.target_modules`, `model.model`)."
        )


def saved_group_layout(checkpoint: dict[str, Any]) -> list[tuple[str, int]] | None:
    """``[(group name, parameter count)]`` of the optimizer a checkpoint was saved with (None without one)."""
    states = checkpoint.get("optimizer_states") or []
    if not states:
        return None
    return [(g.get("name", f"group {i}"), len(g["params"])) for i, g in enumerate(states[0]["param_groups"])]


def check_group_layout(saved: list[tuple[str, int]], built: list[tuple[str, int]]) -> None:
    """Refuse to resume an optimizer whose groups differ from the ones these settings build.

    Args:
        saved: :func:`saved_group_layout` of the checkpoint.
        built: The same for the optimizer built now.

    Raises:
        ValueError: Listing both layouts and the settings that decide them.
    """
    if saved != built:
        raise ValueError(
            f"The checkpoint's optimizer has the LoRA+ groups {saved} (name, parameters), but these settings "
            f"build {built}. Resume with the settings the run was trained with: the group-deciding ones are "
            "`model.head_lr`, `model.embedding_lr`, `model.magnitude_lr`, `model.weight_decay`, `model.bias`, "
            "`model.modules_to_save`, `model.target_modules`, `model.use_dora`."
        )


def check_tokenizer_fits(model: nn.Module, tokenizer: Any, setting: str) -> None:
    """Refuse a tokenizer whose ids the model's embedding cannot look up (a tokenizer of another model).

    Args:
        model: The (PEFT) model.
        tokenizer: The data module's tokenizer.
        setting: How the user names it, for the message (e.g. ``data.tokenizer=bert-base-uncased``).

    Raises:
        ValueError: Naming both sizes and the fix.
    """
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    rows = getattr(embeddings, "num_embeddings", None)
    if rows is not None and len(tokenizer) > rows:
        raise ValueError(
            f"`{setting}` has {len(tokenizer)} tokens but the model's embedding has {rows} rows: its ids would index "
            "past the table. Use the model's own tokenizer (leave `data.tokenizer` linked to `model.model`)."
        )
