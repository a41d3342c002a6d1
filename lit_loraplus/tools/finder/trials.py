"""The Lightning side of a ratio-finder trial: loss recording, an in-memory logger, the trainer.

The initial state every trial starts from is :class:`~lit_loraplus.training.state.InitialState`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from typing_extensions import override

from lit_loraplus.tools.finder.scoring import smooth_losses
from lit_loraplus.training.precision import TRUE_HALF, AdapterFP32Precision


class TrialRecorder(Callback):
    """Record each batch's training loss; stop the trial when it diverges (as ``lr_find`` does)."""

    def __init__(self, smoothing: float, threshold: float) -> None:
        self.smoothing, self.threshold = smoothing, threshold
        self.losses: list[float] = []
        self.diverged = False

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        self.losses.append(float(loss) * trainer.accumulate_grad_batches)
        smoothed = smooth_losses(self.losses, self.smoothing)
        # Relative to the first loss, not (as lr_find) to the best: a loss near 0 must not make noise "diverge".
        if not math.isfinite(self.losses[-1]) or smoothed[-1] > self.threshold * smoothed[0]:
            self.diverged = True
            trainer.should_stop = True


class MemoryLogger(Logger):
    """Keep logged metrics in memory: FeatureLearningMonitor needs a logger, the finder writes no files."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, float]] = []

    @property
    @override
    def name(self) -> str:
        return "ratio_finder"

    @property
    @override
    def version(self) -> int:
        return 0

    @override
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.rows.append(dict(metrics))

    @override
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def last(self, key: str) -> float | None:
        """The last value logged under ``key``, or None."""
        return next((row[key] for row in reversed(self.rows) if key in row), None)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-fit info lines ("GPU available", "max_steps reached") during the trials."""
    lightning_logger = logging.getLogger("lightning.pytorch")
    level = lightning_logger.level
    lightning_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        lightning_logger.setLevel(level)


def trial_trainer(
    steps: int, callbacks: list[Callback], logger: Logger, trainer_kwargs: Mapping[str, Any]
) -> L.Trainer:
    kwargs = dict(trainer_kwargs)
    if kwargs.get("precision") in TRUE_HALF:  # keep the LoRA matrices fp32, as the CLI does
        kwargs["plugins"] = [*(kwargs.get("plugins") or []), AdapterFP32Precision(kwargs.pop("precision"))]
    # Defaults the caller may change (e.g. a progress bar per trial).
    quiet = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0}
    quiet["log_every_n_steps"] = 1  # the module logs its loss every step; avoids "smaller than the interval"
    return L.Trainer(
        max_steps=steps,
        max_epochs=-1,
        devices=1,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        limit_val_batches=0,
        **(quiet | kwargs),
    )
