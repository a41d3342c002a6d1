"""``ProgressLines``: training progress as plain lines, for logs, pipes and batch jobs (no progress bar)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from lit_loraplus.core.checks import positive, raise_problems


class ProgressLines(Callback):
    """Print one line per interval: step, loss, the learning rate of A and B, throughput and time left.

    ``lit-loraplus fit`` uses it instead of the progress bar when standard output is not a terminal
    (``> log.txt``, ``| tee``, a scheduler's log file), where a bar shows nothing useful. A line is printed
    at the first optimizer step, then whenever ``every_n_seconds`` passed or ``every_fraction`` of the run
    was done, at the last step, and after each validation::

        step 100/300 (33%) | loss 0.8712 | lr A 1.33e-04 B 2.13e-03 | 1.9 steps/s, 61 samples/s | 1m45s left
        validation at step 100 | val/loss 0.7513 | val/accuracy 0.6980

    Args:
        every_n_seconds: Longest time between two lines.
        every_fraction: Also a line each time this fraction of the run is done.
        stream: Where to write (default: standard output).

    Raises:
        ValueError: For a non-positive interval or a fraction outside (0, 1].
    """

    def __init__(self, every_n_seconds: float = 30.0, every_fraction: float = 0.05, stream: TextIO | None = None):
        problems = positive("every_n_seconds", every_n_seconds)
        if not (positive("every_fraction", every_fraction) == [] and every_fraction <= 1):
            problems.append(f"`every_fraction={every_fraction!r}` must be in (0, 1].")
        raise_problems(problems, "ProgressLines settings")
        self.every_n_seconds, self.every_fraction = every_n_seconds, every_fraction
        self.stream = stream
        self._started = self._last_line = 0.0
        self._first_step = self._next_step = 0
        self._samples = 0

    def _write(self, line: str) -> None:
        print(line, file=self.stream or sys.stdout, flush=True)

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = self._last_line = time.monotonic()
        self._first_step = self._next_step = trainer.global_step
        self._samples = 0

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not trainer.is_global_zero:
            return
        ids = batch.get("input_ids") if isinstance(batch, dict) else None
        self._samples += int(ids.shape[0]) * trainer.world_size if ids is not None else 0
        step, total = trainer.global_step, trainer.max_steps if trainer.max_steps > 0 else None
        total = total or int(trainer.estimated_stepping_batches)
        now = time.monotonic()
        due = step >= self._next_step or now - self._last_line >= self.every_n_seconds or step >= total
        if not due or step == 0:
            return
        self._last_line = now
        self._next_step = step + max(1, int(self.every_fraction * total))
        done, elapsed = step - self._first_step, max(now - self._started, 1e-9)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        parts = [f"step {step}/{total} ({100 * step / total:.0f}%)"]
        if loss is not None:
            parts.append(f"loss {float(loss) * trainer.accumulate_grad_batches:.4f}")
        if lrs := _group_rates(trainer):
            parts.append("lr " + " ".join(f"{name} {lr:.2e}" for name, lr in lrs))
        rate = done / elapsed
        parts.append(f"{rate:.2f} steps/s" + (f", {self._samples / elapsed:.0f} samples/s" if self._samples else ""))
        if rate > 0 and step < total:
            parts.append(f"{_duration((total - step) / rate)} left")
        self._write(" | ".join(parts))

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and v.numel() == 1}
        shown = " | ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
        self._write(f"validation at step {trainer.global_step}" + (f" | {shown}" if shown else ""))


def _group_rates(trainer: L.Trainer) -> list[tuple[str, float]]:
    """(short name, lr) of the A and B groups (``lora_A`` -> ``A``), else of the first group."""
    if not trainer.optimizers:
        return []
    groups = trainer.optimizers[0].param_groups
    named = [(g["name"].removeprefix("lora_"), g["lr"]) for g in groups if g.get("name") in ("lora_A", "lora_B")]
    return named or [("", groups[0]["lr"])]


def _duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s``."""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
