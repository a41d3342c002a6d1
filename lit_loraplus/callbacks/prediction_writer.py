"""``JsonlPredictionWriter``: ``predict`` rows to a JSON Lines file as batches arrive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from typing_extensions import override


class JsonlPredictionWriter(BasePredictionWriter):
    """Write ``predict`` rows to a JSON Lines file as batches arrive (rank ``k > 0`` adds ``.rank{k}``).

    Args:
        output_file: The ``.jsonl`` file to write (its folder is created).

    Example:
        ``lit-loraplus predict --config c.yaml --trainer.callbacks+=lit_loraplus.callbacks.JsonlPredictionWriter
        --trainer.callbacks.output_file=preds.jsonl --ckpt_path last``
    """

    def __init__(self, output_file: str) -> None:
        super().__init__(write_interval="batch")
        self.output_file = Path(output_file)

    def _path(self, trainer: L.Trainer) -> Path:
        rank = trainer.global_rank
        return self.output_file if rank == 0 else self.output_file.with_suffix(f".rank{rank}.jsonl")

    @override
    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._path(trainer).parent.mkdir(parents=True, exist_ok=True)
        self._path(trainer).write_text("")

    @override
    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: list[dict[str, Any]],
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        with self._path(trainer).open("a") as f:
            for row in prediction:
                f.write(json.dumps(row) + "\n")
