"""Adapter-only checkpoints: trainable weights only, an explicit completeness check, RNG state.

A 7B run saves megabytes, not gigabytes: frozen base weights never enter a checkpoint. Because
loading is therefore non-strict, :func:`check_trainable_keys` makes a missing adapter key an
error instead of a silently untrained adapter. Lightning saves no RNG state, so exact resume
needs :func:`rng_state`/:func:`set_rng_state`.
"""

from __future__ import annotations

import os
import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor, nn
from typing_extensions import override

from lit_loraplus.distributed import clean_name

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


def rng_state() -> dict[str, Any]:
    """The Python, NumPy, torch CPU and CUDA generator states, in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos)}
    numpy_state |= {"has_gauss": int(has_gauss), "gauss": float(gauss)}
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned.

    Args:
        state: A saved state.
    """
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class AdapterCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose default folder is fixed: ``<default_root_dir>/checkpoints``.

    Lightning's default folder sits under the logger's ``version_N``, so a new process's
    ``--ckpt_path last`` looks elsewhere and silently starts over. Here every process of a run
    agrees on the folder. All ``ModelCheckpoint`` arguments apply; ``save_last`` defaults to True.

    Args:
        dirpath: Checkpoint folder (default ``<trainer.default_root_dir>/checkpoints``).
        save_last: Also write ``last.ckpt`` (needed by ``--ckpt_path last``).
        **kwargs: Other ``ModelCheckpoint`` arguments (``every_n_train_steps``, ``monitor``, ...).
    """

    def __init__(self, dirpath: str | None = None, save_last: bool | None = True, **kwargs: Any) -> None:
        super().__init__(dirpath=dirpath, save_last=save_last, **kwargs)

    @staticmethod
    def folder(callback: ModelCheckpoint, trainer: L.Trainer) -> str:
        """Where ``callback`` writes for ``trainer`` (its dirpath, else the fixed default)."""
        return callback.dirpath or os.path.join(trainer.default_root_dir, "checkpoints")

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.dirpath = self.folder(self, trainer)
        super().setup(trainer, pl_module, stage)
