"""Callbacks that subprocess tests add on the `lit-loraplus` command line (tests/ is put on PYTHONPATH)."""

from __future__ import annotations

import json
import os
import signal

import lightning as L
from lightning.pytorch.callbacks import Callback


class BatchRecorder(Callback):
    """Append, per training step, a fingerprint of the batch and every group's learning rate to a JSONL file.

    Args:
        path: The JSONL file.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        ids = batch["input_ids"]
        row = {
            "step": trainer.global_step,
            "batch": ids.tolist(),
            "lrs": {g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups},
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


class ExitAtStep(Callback):
    """Simulate a crash: end the process abruptly when training reaches ``step`` (checkpoints before it stay).

    Args:
        step: Global step at whose start the process exits.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step >= self.step:
            os._exit(0)


class SignalAtStep(Callback):
    """Send a signal at the start of optimizer step ``step``, once, from global rank 0: to its own process, or to
    its whole process group (every DDP rank), as a scheduler would.

    Args:
        step: Global step at whose first (micro-)batch the signal is sent.
        name: Signal name, e.g. ``SIGTERM``.
        group: Send it to the process group instead of rank 0 alone.
    """

    def __init__(self, step: int, name: str = "SIGTERM", group: bool = False) -> None:
        self.step, self.name, self.group = step, name, group
        self.sent = False

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step and trainer.is_global_zero and not self.sent:
            self.sent = True
            number = getattr(signal, self.name)
            if self.group:
                os.killpg(os.getpgid(0), number)
            else:
                os.kill(os.getpid(), number)
