"""Helpers any benchmark of this repository can share: atomic JSON records, a curve recorder, t-intervals.

Nothing here knows about LoRA+ or GLUE. ``write_json_atomic`` and ``read_records`` make a benchmark
resumable (a record exists only once its run finished); :class:`CurveRecorder` keeps what a learning
curve and a cost estimate need; :func:`t_interval`, :func:`paired_difference` and :func:`steps_to_reach`
are the statistics a report states.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from scipy import stats
from typing_extensions import override

Record = dict[str, Any]


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON through a temporary file and ``os.replace``.

    A reader (or a resumed benchmark) sees the previous file or the complete new one, never half of one.
    Non-finite floats (a diverged run's loss) become ``null``, so the file is strict JSON.

    Args:
        path: Target file; its folder is created.
        payload: JSON-serialisable data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite(payload), indent=1) + "\n")
    os.replace(tmp, path)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def read_records(folder: Path) -> list[Record]:
    """Every ``*.json`` record under ``folder`` (recursively), in path order; empty if the folder is absent."""
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))] if folder.is_dir() else []


def as_float(value: float | None) -> float:
    """A recorded value as a float, ``null`` (diverged or missing) as NaN."""
    return math.nan if value is None else float(value)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean and two-sided Student-t confidence interval of independent observations.

    Args:
        values: The observations (e.g. one final metric per seed); NaN (a diverged run) makes the result NaN.
        confidence: Coverage of the interval.

    Returns:
        ``{"n", "mean", "std", "half_width", "low", "high", "values"}``; with fewer than two values the
        spread and the interval are NaN (written as ``null``).

    Example:
        >>> round(t_interval([1.0, 2.0, 3.0])["half_width"], 3)  # t(0.975, 2) · 1 / √3
        2.484
    """
    n = len(values)
    mean = statistics.fmean(values) if n else math.nan
    std = statistics.stdev(values) if n > 1 else math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "half_width": half, "low": mean - half, "high": mean + half,
            "values": list(values)}  # fmt: skip


def paired_difference(
    baseline: dict[int, float], treatment: dict[int, float], confidence: float = 0.95
) -> dict[str, Any]:
    """Per-pair differences ``treatment − baseline`` over the keys both hold, with their t-interval.

    Pairing (here: runs that share a seed, hence data order and initialisation) removes the between-seed
    variance that an unpaired comparison of two means carries.

    Args:
        baseline: Value per pair key (seed).
        treatment: Value per pair key.
        confidence: Coverage of the interval.

    Returns:
        :func:`t_interval` of the differences, plus ``"keys"`` (the shared keys, sorted).
    """
    keys = sorted(set(baseline) & set(treatment))
    return t_interval([treatment[k] - baseline[k] for k in keys], confidence) | {"keys": keys}


def steps_to_reach(steps: Sequence[int], values: Sequence[float], target: float, lower_is_better: bool) -> dict:
    """Where a learning curve first reaches ``target``, interpolated linearly between its evaluations.

    Args:
        steps: Evaluation steps, increasing.
        values: The curve at those steps.
        target: The value to reach (reaching means ``<=`` for a loss, ``>=`` otherwise).
        lower_is_better: Whether smaller values are better.

    Returns:
        ``{"steps": s, "bound": b}``: ``s`` is None if the curve never reaches the target; ``b`` is True
        when the first evaluation already reaches it, or the one before is NaN (there is no point to
        interpolate from, so ``s`` is then an upper bound on the true step).

    Example:
        >>> steps_to_reach([10, 20, 30], [0.9, 0.7, 0.5], 0.6, lower_is_better=True)
        {'steps': 25.0, 'bound': False}
    """
    sign = 1.0 if lower_is_better else -1.0
    for i, (step, value) in enumerate(zip(steps, values, strict=True)):
        if not sign * (value - target) <= 0:  # NaN never reaches
            continue
        s0, v0 = (steps[i - 1], values[i - 1]) if i else (0, math.nan)
        if math.isnan(v0):
            return {"steps": float(step), "bound": True}
        return {"steps": s0 + (target - v0) / (value - v0) * (step - s0), "bound": False}
    return {"steps": None, "bound": False}


class CurveRecorder(L.Callback):
    """Records a learning curve and what its run cost.

    Keeps ``[step, train loss]`` after every optimizer step, the ``val/*`` values after every validation
    (``{"step": s, "loss": ..., <metric>: ...}``, keys without the ``val/`` prefix), and per-interval wall
    and CPU times. With one thread, CPU seconds are what a step costs on one idle core, however busy the
    machine is.

    Attributes:
        train: ``[step, loss]`` pairs (step counted after the optimizer step, from 1).
        evals: One dict per validation.
        step_times: Wall seconds between consecutive training-batch starts (intervals holding a validation dropped).
        step_cpu: The same intervals in CPU seconds of this process.
        eval_times: Wall seconds per validation.
        eval_cpu: CPU seconds per validation.
        first_step_at: ``(wall, CPU)`` clocks at the first training batch (set-up cost = this − start).
    """

    def __init__(self) -> None:
        self.train: list[list[float]] = []
        self.evals: list[dict[str, float]] = []
        self.step_times: list[float] = []
        self.step_cpu: list[float] = []
        self.eval_times: list[float] = []
        self.eval_cpu: list[float] = []
        self.first_step_at: tuple[float, float] | None = None
        self._last_start: tuple[float, float] | None = None
        self._eval_start = (0.0, 0.0)

    @staticmethod
    def _now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    @override
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int) -> None:
        now = self._now()
        if self._last_start is not None:
            self.step_times.append(now[0] - self._last_start[0])
            self.step_cpu.append(now[1] - self._last_start[1])
        self._last_start = now
        self.first_step_at = self.first_step_at or now

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.train.append([trainer.global_step, float(loss)])

    @override
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_start = self._now()

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = self._now()
        self.eval_times.append(now[0] - self._eval_start[0])
        self.eval_cpu.append(now[1] - self._eval_start[1])
        self._last_start = None  # the next step interval would include this validation
        values = {k.removeprefix("val/"): float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        self.evals.append({"step": trainer.global_step} | values)

    def timing(self, started: tuple[float, float]) -> dict[str, float | None]:
        """Set-up, median step and evaluation costs, and totals (wall and CPU seconds) since ``started``.

        Args:
            started: ``(time.perf_counter(), time.process_time())`` taken when the run began.
        """
        now = self._now()
        median = {k: statistics.median(v) if v else None for k, v in (
            ("step_s", self.step_times), ("step_cpu_s", self.step_cpu),
            ("eval_s", self.eval_times), ("eval_cpu_s", self.eval_cpu))}  # fmt: skip
        first = self.first_step_at
        return median | {
            "setup_s": first[0] - started[0] if first else None,
            "setup_cpu_s": first[1] - started[1] if first else None,
            "wall_s": now[0] - started[0],
            "cpu_s": now[1] - started[1],
            "steps_timed": len(self.step_times),
            "evals_timed": len(self.eval_times),
        }
