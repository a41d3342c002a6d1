"""Shared benchmark machinery: one process per run, rotated interleaved rounds, per-pair ratios, tables.

Every benchmark here compares variants of one training run on a shared, noisy machine, so each
follows the same recipe: every run is a fresh process (peak RSS is per process and imports count);
a round runs every variant once, in an order rotated from round to round, so slow drift of the
machine hits all of them alike; a variant is compared with its baseline *within* a round, and the
per-pair ratios are summarised by their median and range. Pure standard library: a worker imports
only what its own variant needs.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Environment of every worker: never wait on the network.
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def spawn(script: str | Path, args: Sequence[str]) -> dict[str, Any]:
    """Run ``python script *args`` in a fresh process and return the JSON object on its last stdout line.

    Args:
        script: The benchmark script (re-run in worker mode).
        args: Its command-line arguments.

    Returns:
        The worker's result.

    Raises:
        SystemExit: If the worker fails, with the tail of its stderr.
    """
    cmd = [sys.executable, str(script), *args]
    done = subprocess.run(cmd, env={**os.environ, **WORKER_ENV}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"worker `{' '.join(cmd[1:])}` failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """``names`` rotated left by ``round_index``, so that no variant always runs first."""
    k = round_index % len(names)
    return [*names[k:], *names[:k]]


def run_rounds(
    names: Sequence[str],
    rounds: int,
    run: Callable[[str], dict[str, Any]],
    check: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[list[dict[str, Any]]]:
    """Run every variant once per round, in rotated order, and return the results round by round.

    Args:
        names: The variants (the first is the baseline by convention; order only sets the rotation).
        rounds: Number of rounds.
        run: Runs one variant (in a fresh process) and returns its result.
        check: Called with each finished round, e.g. to fail early when the variants did not do the
            same work.

    Returns:
        ``rounds`` lists of results, each in the order the variants ran.
    """
    runs = []
    for i in range(rounds):
        start = time.perf_counter()
        results = [run(name) for name in rotated(names, i)]
        if check is not None:
            check(results)
        runs.append(results)
        print(f"round {i + 1}/{rounds} done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return runs


def spread(values: Sequence[float]) -> dict[str, Any]:
    """``{"median", "min", "max", "pairs"}`` of a list of per-pair values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "pairs": list(values)}


def pair_ratios(
    runs: list[list[dict[str, Any]]], key: str, numerator: str, denominator: str, metrics: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per metric, the ratio numerator / denominator within each round, summarised by :func:`spread`.

    Args:
        runs: Results round by round (:func:`run_rounds`).
        key: The result field that names the variant.
        numerator: The variant measured.
        denominator: Its baseline.
        metrics: Result fields to divide (e.g. ``median_s``, ``peak_rss_mb``).

    Returns:
        ``{metric: spread of the per-round ratios}``.
    """
    ratios: dict[str, list[float]] = {m: [] for m in metrics}
    for results in runs:
        by_name = {r[key]: r for r in results}
        for m in metrics:
            ratios[m].append(by_name[numerator][m] / by_name[denominator][m])
    return {m: spread(v) for m, v in ratios.items()}


def verdict(ratio: dict[str, Any], target: float) -> str:
    """``met`` if the whole spread is at or below ``target``, ``missed`` if all above, else ``unclear``."""
    if ratio["max"] <= target:
        return "met"
    return "missed" if ratio["min"] > target else "unclear"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


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
    """A Lightning callback that marks ``clock`` at every ``on_train_batch_start`` and at ``on_train_end``."""
    import lightning.pytorch as pl

    class ClockCallback(pl.Callback):
        def on_train_batch_start(self, *args: Any) -> None:
            clock.mark()

        def on_train_end(self, *args: Any) -> None:
            clock.mark()

    return ClockCallback()
