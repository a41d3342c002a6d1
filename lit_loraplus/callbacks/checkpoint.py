"""``AdapterCheckpoint``: Lightning's ``ModelCheckpoint`` with a folder every process of a run agrees on."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from typing_extensions import override


class AdapterCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose default folder is fixed: ``<default_root_dir>/checkpoints``.

    Lightning's default folder sits under the logger's ``version_N``, so a new process's
    ``--ckpt_path last`` looks elsewhere and silently starts over. Here every process of a run
    agrees on the folder. All ``ModelCheckpoint`` arguments apply; ``save_last`` defaults to True.
    Checkpoints of a ``LoraPlusModule`` hold the trainable weights only.

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
