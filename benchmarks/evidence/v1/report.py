"""Reading the convergence benchmark's run records: best cells, mean curves, steps to target, tables.

Pure Python (the figures are :mod:`benchmarks.evidence.v1.figures`). The primary metric is the final
held-out loss (lower is better): it separates grid cells after far fewer steps than accuracy or MCC.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Record = dict[str, Any]
LOWER_IS_BETTER = {"loss", "perplexity"}


def arm_name(task: str, init: str) -> str:
    """``<task>-<init>``, the name of one (task, initialisation) arm in file names and the summary."""
    return f"{task}-{init}"


def final_value(record: Record, key: str) -> float:
    """A run's last held-out value of ``key`` (NaN when missing or diverged)."""
    value = record["final"].get(key)
    return float(value) if value is not None else math.nan


def cell_key(record: Record) -> tuple[float, float]:
    """``(η_A, λ)`` of a run."""
    return record["spec"]["lr"], record["spec"]["ratio"]


def better(a: float, b: float, key: str) -> bool:
    """Whether ``a`` beats ``b`` for ``key`` (NaN never beats anything; anything beats NaN)."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a < b if key in LOWER_IS_BETTER else a > b


def best_cell(records: Iterable[Record], key: str = "loss") -> tuple[float, float] | None:
    """The (η_A, λ) whose seed-mean final ``key`` is best among ``records`` (None if all diverged or none).

    Args:
        records: Runs of one arm (any subset of cells and seeds).
        key: Metric deciding the cell (held-out ``loss`` by default).
    """
    by_cell: dict[tuple[float, float], list[float]] = {}
    for record in records:
        by_cell.setdefault(cell_key(record), []).append(final_value(record, key))
    best: tuple[float, float] | None = None
    best_value = math.nan
    for cell, values in sorted(by_cell.items()):
        value = statistics.fmean(values)
        if better(value, best_value, key):
            best, best_value = cell, value
    return best


def mean_curve(records: list[Record], key: str) -> tuple[list[int], list[float]]:
    """Held-out ``key`` averaged over runs at each evaluation step they share.

    Args:
        records: Runs of one cell (one per seed).
        key: An evaluation key (``loss``, ``accuracy``, ...).

    Returns:
        ``(steps, means)``; a step where any run lacks the value (diverged) has mean NaN.
    """
    per_step: dict[int, list[float]] = {}
    for record in records:
        for row in record["evals"]:
            value = row.get(key)
            per_step.setdefault(int(row["step"]), []).append(math.nan if value is None else float(value))
    steps = sorted(s for s, values in per_step.items() if len(values) == len(records))
    return steps, [statistics.fmean(per_step[s]) for s in steps]


def steps_to_reach(steps: list[int], values: list[float], target: float, key: str) -> int | None:
    """The first evaluation step whose value is at least as good as ``target`` (None if never).

    Args:
        steps: Evaluation steps, increasing.
        values: The curve at those steps.
        target: Value to reach.
        key: The metric (decides the direction: loss and perplexity go down).
    """
    for step, value in zip(steps, values, strict=True):
        if not math.isnan(value) and (value == target or better(value, target, key)):
            return step
    return None


def steps_to_target(lora: list[Record], loraplus: list[Record], key: str) -> dict[str, Any]:
    """How many steps LoRA+ needs to reach the best LoRA run's final value, on seed-mean curves.

    Args:
        lora: The best λ = 1 cell's runs (one per seed).
        loraplus: The best λ > 1 cell's runs.
        key: Evaluation key (``loss`` or the task metric).

    Returns:
        ``target`` (LoRA's final mean), ``lora_steps`` (the first step LoRA's own mean curve reaches it),
        ``loraplus_steps`` (None if LoRA+ never does) and ``speedup`` = lora_steps / loraplus_steps.
    """
    lora_steps, lora_values = mean_curve(lora, key)
    plus_steps, plus_values = mean_curve(loraplus, key)
    target = lora_values[-1]
    first_lora = steps_to_reach(lora_steps, lora_values, target, key)
    first_plus = steps_to_reach(plus_steps, plus_values, target, key)
    speedup = first_lora / first_plus if first_lora and first_plus else None
    return {"key": key, "target": target, "lora_steps": first_lora, "loraplus_steps": first_plus, "speedup": speedup}


def mean_std(values: list[float]) -> dict[str, Any]:
    """``{"mean", "std", "n", "values"}`` (std is the sample standard deviation; 0 for one value)."""
    finite = [v for v in values if not math.isnan(v)]
    return {
        "mean": statistics.fmean(finite) if finite else math.nan,
        "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
        "n": len(finite),
        "values": values,
    }


def summarise_arm(records: list[Record], metric: str) -> dict[str, Any]:
    """Everything the README table needs for one arm.

    The cells are chosen on the seed-0 grid (held-out loss); their statistics use every seed run there.

    Args:
        records: All runs of the arm.
        metric: The task metric (``accuracy``, ``matthews``, ``f1``, ``token_accuracy``).

    Returns:
        ``grid`` (seed-0 final loss and metric per cell), ``best_lora`` / ``best_loraplus`` (cell, loss and
        metric mean ± std over seeds), ``best_ratio`` (λ of the best cell over all λ, per η_A too),
        ``steps_to_target`` for the loss and the metric; ``{}`` parts where a side has no finite run.
    """
    grid = [r for r in records if r["spec"]["seed"] == min(x["spec"]["seed"] for x in records)]
    summary: dict[str, Any] = {
        "metric": metric,
        "grid": [
            {
                "lr": cell_key(r)[0],
                "ratio": cell_key(r)[1],
                "loss": final_value(r, "loss"),
                metric: final_value(r, metric),
            }
            for r in sorted(grid, key=cell_key)
        ],
    }
    best = {
        "best_lora": best_cell(r for r in grid if r["spec"]["ratio"] == 1),
        "best_loraplus": best_cell(r for r in grid if r["spec"]["ratio"] > 1),
    }
    chosen: dict[str, list[Record]] = {}
    for name, cell in best.items():
        if cell is None:
            summary[name] = {}
            continue
        chosen[name] = [r for r in records if cell_key(r) == cell]
        summary[name] = {
            "lr": cell[0],
            "ratio": cell[1],
            "seeds": sorted(r["spec"]["seed"] for r in chosen[name]),
            "loss": mean_std([final_value(r, "loss") for r in chosen[name]]),
            metric: mean_std([final_value(r, metric) for r in chosen[name]]),
        }
    overall = best_cell(grid)
    lrs = sorted({cell_key(r)[0] for r in grid})
    summary["best_ratio"] = {
        "overall": overall[1] if overall else None,
        "per_lr": {
            str(lr): (c[1] if (c := best_cell(r for r in grid if cell_key(r)[0] == lr)) else None) for lr in lrs
        },
    }
    if len(chosen) == 2:
        summary["steps_to_target"] = {
            key: steps_to_target(chosen["best_lora"], chosen["best_loraplus"], key) for key in ("loss", metric)
        }
    return summary


def mmlu_summary(folder: Path, runs: dict[str, list[str]]) -> dict[str, Any]:
    """MMLU results of the base model and of the best cells' runs, from ``<folder>/<run id>.json``.

    Args:
        folder: The MMLU phase's output folder.
        runs: ``{"best_lora": [run ids], "best_loraplus": [run ids]}``.

    Returns:
        ``base``: the base model's record; per cell: accuracy mean ± std over seeds, the mean standard
        error sqrt(p(1 − p)/n) of one evaluation, and n. Missing files are left out.
    """

    def load(name: str) -> dict[str, Any] | None:
        path = folder / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    out: dict[str, Any] = {}
    if base := load("base"):
        out["base"] = base
    for cell, names in runs.items():
        found = [r for r in map(load, names) if r is not None]
        if found:
            out[cell] = {
                "accuracy": mean_std([r["accuracy"] for r in found]),
                "se": statistics.fmean(r["se"] for r in found),
                "n": found[0]["n"],
            }
    return out


def _pm(stats: dict[str, Any] | None) -> str:
    if not stats or math.isnan(stats["mean"]):
        return "–"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def markdown_table(summary: dict[str, Any]) -> str:
    """The results as a markdown table: best LoRA vs best LoRA+ (mean ± std over seeds), steps to target, best λ.

    Args:
        summary: ``{arm: summarise_arm(...)}``.
    """
    lines = [
        "| arm | metric | best LoRA (λ=1): η_A, held-out loss, metric | best LoRA+: η_A, λ, held-out loss, metric "
        "| steps to LoRA's final loss: LoRA → LoRA+ | same for the metric | best λ |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, s in summary.items():
        metric, lora, plus = s["metric"], s.get("best_lora") or {}, s.get("best_loraplus") or {}
        cells = []
        for cell, with_ratio in ((lora, False), (plus, True)):
            if not cell:
                cells.append("–")
                continue
            head = f"{cell['lr']:.2g}" + (f", {cell['ratio']:g}" if with_ratio else "")
            cells.append(f"{head}, {_pm(cell['loss'])}, {_pm(cell[metric])} (n={cell['loss']['n']})")
        steps = []
        for key in ("loss", metric):
            t = s.get("steps_to_target", {}).get(key)
            if not t:
                steps.append("–")
            else:
                plus_steps = t["loraplus_steps"] if t["loraplus_steps"] is not None else "never"
                ratio = f" (×{t['speedup']:.2f})" if t["speedup"] else ""
                steps.append(f"{t['lora_steps']} → {plus_steps}{ratio}")
        lines.append(
            f"| {arm} | {metric} | {cells[0]} | {cells[1]} | {steps[0]} | {steps[1]} | {s['best_ratio']['overall']} |"
        )
    return "\n".join(lines)


def finder_table(summary: dict[str, Any]) -> str:
    """The ratio finder's suggestion against the grid's best λ, per arm, as a markdown table ("" if none ran).

    Args:
        summary: ``{arm: summarise_arm(...)}`` with a ``finder`` entry where the finder phase ran.
    """
    rows = [(arm, s["finder"]) for arm, s in summary.items() if s.get("finder")]
    if not rows:
        return ""
    lines = [
        "| arm | η_A (best cell's) | finder steps | finder's λ | grid's best λ | grid steps apart | within one step |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, f in rows:
        suggested = "all diverged" if f["suggested_ratio"] is None else f"{f['suggested_ratio']:g}"
        within = "yes" if f["within_one_step"] else "**no**"
        lines.append(
            f"| {arm} | {f['lr']:.3g} | {f['steps']} | {suggested} | {f['grid_best_ratio']:g} "
            f"| {f['grid_steps_apart']} | {within} |"
        )
    return "\n".join(lines)
