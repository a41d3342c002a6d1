"""A Lightning callback that records a run's learning curves and what each step and evaluation cost."""

from __future__ import annotations

import statistics
import time
from typing import Any

import lightning as L
from typing_extensions import override


class CurveRecorder(L.Callback):
    """Records (step, train loss) every step, held-out ``val/*`` after each validation, and timings.

    Attributes:
        train: ``[step, loss]`` pairs (step counted after the optimizer step, from 1).
        evals: ``{"step", "loss", <metric>: value}`` per validation (``val/`` stripped; keys holding a further
            ``/``, such as counts or per-category values, kept only with ``nested``).
        step_times: Seconds between consecutive training-batch starts (a validation in between excluded).
        step_cpu: The same intervals in CPU seconds of this process (with one thread: the step's cost on
            one idle core, whatever else shares the machine).
        eval_times: Seconds per validation pass.
        eval_cpu: CPU seconds per validation pass.
        first_step_at: ``(wall, CPU)`` clocks at the first training batch (set-up cost = this − start).

    Args:
        nested: Also keep ``val/<metric>/<part>`` values (e.g. MMLU per category).
    """

    def __init__(self, nested: bool = False) -> None:
        self.nested = nested
        self.train: list[list[float]] = []
        self.evals: list[dict[str, float]] = []
        self.step_times: list[float] = []
        self.step_cpu: list[float] = []
        self.eval_times: list[float] = []
        self.eval_cpu: list[float] = []
        self.first_step_at: tuple[float, float] | None = None
        self._last_start: tuple[float, float] | None = None
        self._eval_start = (0.0, 0.0)

    @override
    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        now = (time.perf_counter(), time.process_time())
        if self._last_start is not None:
            self.step_times.append(now[0] - self._last_start[0])
            self.step_cpu.append(now[1] - self._last_start[1])
        self._last_start = now
        if self.first_step_at is None:
            self.first_step_at = now

    @override
    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, *args: Any) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.train.append([trainer.global_step, float(loss)])

    @override
    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._eval_start = (time.perf_counter(), time.process_time())

    @override
    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.eval_times.append(time.perf_counter() - self._eval_start[0])
        self.eval_cpu.append(time.process_time() - self._eval_start[1])
        self._last_start = None  # the next step interval would include the validation
        metrics = {
            k.removeprefix("val/"): float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")
        }
        self.evals.append(
            {"step": trainer.global_step} | {k: v for k, v in metrics.items() if self.nested or "/" not in k}
        )

    def timing(self, started: tuple[float, float]) -> dict[str, float | None]:
        """Set-up, median step and evaluation costs, and totals (wall and CPU seconds) since ``started``.

        Args:
            started: ``(time.perf_counter(), time.process_time())`` taken when the run began.
        """
        now = (time.perf_counter(), time.process_time())
        series = {"step_s": self.step_times, "step_cpu_s": self.step_cpu}
        series |= {"eval_s": self.eval_times, "eval_cpu_s": self.eval_cpu}
        first = self.first_step_at
        return {k: statistics.median(v) if v else None for k, v in series.items()} | {
            "setup_s": first[0] - started[0] if first else None,
            "setup_cpu_s": first[1] - started[1] if first else None,
            "wall_s": now[0] - started[0],
            "cpu_s": now[1] - started[1],
            "steps_timed": len(self.step_times),
            "evals_timed": len(self.eval_times),
        }
