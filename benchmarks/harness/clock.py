"""A clock marked at the start of every training step, and timed spans (phases) within the steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class StepClock:
    """Timestamps at the start of every training step, and timed spans (phases) within the steps.

    A run marks the clock at the start of each step and once at the end of training; step ``i``
    lasts from mark ``i`` to mark ``i + 1`` and so covers everything the loop does for that step,
    data loading and hooks included. Spans (``forward``, ``data``, ...) recorded during the run give
    each phase's share of the measured steps.

    Args:
        on_mark: Called with the step index at each mark, before the timestamp (e.g. to reseed).
    """

    def __init__(self, on_mark: Callable[[int], None] | None = None) -> None:
        self.marks: list[float] = []
        self.spans: list[tuple[str, float, float]] = []
        self.on_mark = on_mark

    def mark(self) -> None:
        """Record the start of a step (or the end of training)."""
        if self.on_mark is not None:
            self.on_mark(len(self.marks))
        self.marks.append(time.perf_counter())

    def span(self, phase: str, start: float, end: float) -> None:
        """Record that ``phase`` ran from ``start`` to ``end`` (``time.perf_counter`` values)."""
        self.spans.append((phase, start, end))

    def step_times(self, warmup: int, count: int | None = None) -> list[float]:
        """Durations of steps ``warmup`` .. ``warmup + count - 1`` (to the last mark if ``count`` is None)."""
        stop = None if count is None else warmup + count + 1
        marks = self.marks[warmup:stop]
        return [b - a for a, b in zip(marks, marks[1:], strict=False)]

    def shares(self, warmup: int, count: int | None = None) -> dict[str, float]:
        """Each phase's share of the measured steps' total time, plus ``other`` (what no span covers).

        A span counts toward the window its start falls in (steps ``warmup`` .. ``warmup + count - 1``).
        """
        first = self.marks[warmup]
        last = self.marks[-1 if count is None else warmup + count]
        total = last - first
        out: dict[str, float] = {}
        for phase, start, end in self.spans:
            if first <= start < last:
                out[phase] = out.get(phase, 0.0) + (end - start) / total
        out["other"] = 1.0 - sum(out.values())
        return out


def lightning_clock(clock: StepClock) -> Any:
    """A Lightning callback that marks ``clock`` at every ``on_train_batch_start`` and at ``on_train_end``.

    Lightning is imported here, on first use, so that the workers that never train with it (the
    hand-written loop, ``transformers.Trainer``) do not load it: its imports would count in their RSS.
    """
    import lightning.pytorch as pl

    class ClockCallback(pl.Callback):
        def on_train_batch_start(self, *args: Any) -> None:
            clock.mark()

        def on_train_end(self, *args: Any) -> None:
            clock.mark()

    return ClockCallback()
