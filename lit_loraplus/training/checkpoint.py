"""Adapter-only checkpoints: trainable weights only, an explicit completeness check.

A 7B run saves megabytes, not gigabytes: frozen base weights never enter a checkpoint. Because
loading is therefore non-strict, :func:`check_trainable_keys` makes a missing adapter key an
error instead of a silently untrained adapter. ``LoraPlusModule`` also stores the random
generators' state under :data:`RNG_KEY` (:mod:`lit_loraplus.core.rng`) for exact resume.
"""

from __future__ import annotations

from torch import Tensor, nn

from lit_loraplus.training.distributed import clean_name

RNG_KEY = "lit_loraplus_rng"


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
