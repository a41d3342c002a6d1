"""A module's training state, captured once and restored exactly, any number of times (trials, searches).

What training may change: the trainable parameters and every buffer, the modules' train/eval modes
and the random generators (:mod:`lit_loraplus.core.rng`). Optimizer state is the caller's: each
trial builds its own optimizer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import lightning as L
import torch
from torch import Tensor, nn

from lit_loraplus.core.rng import rng_state, set_rng_state


def mutable_tensors(module: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """What training may change: the trainable parameters and every buffer."""
    yield from ((n, p) for n, p in module.named_parameters() if p.requires_grad)
    yield from module.named_buffers()


class InitialState:
    """A module's trainable weights, buffers, module modes and hyperparameters, and the random generators.

    Args:
        module: The module (built).
        keys: Hyperparameters to restore too.
        device: Where to keep the copies (None: where the tensors are; ``"cpu"`` spares accelerator memory).
    """

    def __init__(self, module: L.LightningModule, keys: Sequence[str] = (), device: str | None = None) -> None:
        self.tensors = {name: t.detach().to(device, copy=True) for name, t in mutable_tensors(module)}
        self.modes = {m: m.training for m in module.modules()}
        self.hparams = {k: module.hparams[k] for k in keys if k in module.hparams}
        self.trainer = module._trainer
        self.rng = rng_state()

    def restore(self, module: L.LightningModule) -> None:
        """Put the captured weights, buffers, modes, hyperparameters and generator states back (in place)."""
        with torch.no_grad():
            for name, tensor in mutable_tensors(module):
                tensor.copy_(self.tensors[name])
        for m, training in self.modes.items():
            m.training = training
        module.hparams.update(self.hparams)
        set_rng_state(self.rng)
