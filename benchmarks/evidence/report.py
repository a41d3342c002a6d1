"""The report: ``summary.json``, figures and ``report.md``, regenerated from the run records alone.

Per task and init: the pilot; per arm the searched grid (cells at rung 0, cells run to N, extensions,
whether capped) and its choice; over the fresh seeds each arm's final dev loss and task metrics (mean and
95 % t-interval), the paired per-seed difference LoRA+ − LoRA with its interval, and steps-to-target
(target: LoRA's final seed-mean; where LoRA+'s curve reaches it, interpolated between evaluations).
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

from benchmarks.evidence import figures
from benchmarks.evidence.auto import best_grid_cell, markdown_auto, reference_lrs, summarise_auto
from benchmarks.evidence.common import (
    Record,
    as_float,
    format_interval,
    paired_difference,
    read_records,
    steps_to_reach,
    t_interval,
)
from benchmarks.evidence.runner import Runner
from benchmarks.evidence.search import ArmSearch, horizon_bias
from benchmarks.harness.results import write_json_atomic

LOWER_IS_BETTER = {"loss", "perplexity"}


def held_out_split(recipe: dict[str, Any]) -> str:
    """What seed runs are scored on: GLUE ``dev``, or the causal task's ``test`` file (from a record's recipe)."""
    return "test" if recipe.get("family") == "causal" else "dev"


def metric_keys(records: list[Record]) -> list[str]:
    """Held-out keys every record's final evaluation has: ``loss`` first, then the task metrics."""
    keys = set.intersection(*(set(r["final"]) - {"step"} for r in records)) if records else set()
    return sorted(keys, key=lambda k: (k != "loss", k))


def band(records: list[Record], key: str) -> dict[str, list[float]]:
    """Seed-mean curve of ``key`` with its 95 % t-interval at every evaluation step all ``records`` share.

    Args:
        records: Seed runs of one cell.
        key: ``loss`` or a task metric.

    Returns:
        ``{"steps", "mean", "low", "high"}`` (low = high = mean with a single seed).
    """
    if not records:
        return {"steps": [], "mean": [], "low": [], "high": []}
    steps = sorted(set.intersection(*({e["step"] for e in r["evals"]} for r in records)))
    by_step = [{e["step"]: as_float(e.get(key)) for e in r["evals"]} for r in records]
    result: dict[str, list[float]] = {"steps": steps, "mean": [], "low": [], "high": []}
    for step in steps:
        interval = t_interval([values[step] for values in by_step])
        single = math.isnan(interval["half_width"])
        result["mean"].append(interval["mean"])
        result["low"].append(interval["mean"] if single else interval["low"])
        result["high"].append(interval["mean"] if single else interval["high"])
    return result


def steps_to_target(lora: list[Record], loraplus: list[Record], key: str, total: int) -> dict[str, Any]:
    """Where LoRA+ reaches LoRA's final seed-mean ``key``: on its seed-mean curve and per seed.

    Args:
        lora: LoRA's seed runs.
        loraplus: LoRA+'s seed runs.
        key: ``loss`` or a task metric.
        total: N, the run length (speed-up = N / steps).

    Returns:
        ``target``; ``lora`` and ``loraplus`` (:func:`steps_to_reach` on the seed-mean curves, with
        ``speedup``); ``per_seed`` (LoRA+ seed → steps, bound, speedup, for the same target).
    """
    target = statistics.fmean(as_float(r["final"].get(key)) for r in lora)
    lower = key in LOWER_IS_BETTER

    def reach(steps: list[int], values: list[float]) -> dict[str, Any]:
        found = steps_to_reach(steps, values, target, lower)
        return found | {"speedup": total / found["steps"] if found["steps"] else None}

    def mean(records: list[Record]) -> dict[str, Any]:
        curve = band(records, key)
        return reach(curve["steps"], curve["mean"])

    per_seed = {}
    for record in loraplus:
        evals = record["evals"]
        per_seed[record["spec"]["seed"]] = reach([e["step"] for e in evals], [as_float(e.get(key)) for e in evals])
    return {"target": target, "lora": mean(lora), "loraplus": mean(loraplus),
            "per_seed": per_seed}  # fmt: skip


def arm_summary(state: ArmSearch) -> dict[str, Any]:
    """What one arm's search saw and chose."""
    grid = [{"lr": lr, "ratio": ratio, "rung_loss": state.rung_loss.get((lr, ratio)),
             "full_loss": state.full_loss.get((lr, ratio))} for lr, ratio in state.cells]  # fmt: skip
    choice = {"lr": state.choice[0], "ratio": state.choice[1]} if state.choice else None
    return {
        "complete": state.complete, "choice": choice,
        "selection_loss": state.full_loss.get(state.choice) if state.choice else None,
        "lrs": state.lrs, "ratios": list(state.ratios), "extensions": state.extensions, "capped": state.capped,
        "cells_rung": len(state.rung_loss), "cells_full": len(state.full_loss), "grid": grid,
        "horizon": horizon_bias(state),
    }  # fmt: skip


def summarise(runner: Runner, task: str, init: str) -> dict[str, Any] | None:
    """The summary of one task and init (None if it has no records yet)."""
    recipe, out = runner.recipes[task], runner.paths.out
    found = [r for r in read_records(out / "runs" / task) if r["spec"]["init"] == init]
    every = [r for r in found if r["spec"]["kind"] not in ("auto", "outcome")]  # the grid's runs
    if not found:
        return None
    summary: dict[str, Any] = {"recipe": found[0]["recipe"]}
    pilot = runner.paths.record(runner.pilot_spec(task, init))
    if pilot.exists():
        record = json.loads(pilot.read_text())
        value = as_float(record["final"].get(recipe.metric))
        summary["pilot"] = {"spec": record["spec"], "final": record["final"], "evals": record["evals"],
                            "step_cpu_s": record["timing"]["step_cpu_s"], "eval_cpu_s": record["timing"]["eval_cpu_s"],
                            "learns": value >= recipe.learn_threshold}  # fmt: skip
    states = {arm: runner.search(task, init, arm) for arm in runner.protocol.arms()}
    summary["arms"] = {arm: arm_summary(state) for arm, state in states.items()}
    summary |= {"runs": len(every), "cpu_hours": sum(r["timing"]["cpu_s"] for r in every) / 3600}
    if extra := [r for r in found if r["spec"]["kind"] == "outcome"]:  # a budgets search's choices (--phases outcomes)
        summary["outcome_runs"] = {"runs": len(extra), "cpu_hours": sum(r["timing"]["cpu_s"] for r in extra) / 3600}
    seeds = {
        arm: [r for r in every if r["spec"]["kind"] == "seed" and (r["spec"]["lr"], r["spec"]["ratio"]) == s.choice]
        for arm, s in states.items()
    }
    keys = metric_keys(seeds["lora"] + seeds["loraplus"])
    for arm, records in seeds.items():
        finals = {k: t_interval([as_float(r["final"].get(k)) for r in records]) for k in keys}
        # None until the arm has seed runs: "not measured" is not "does not learn".
        learns = finals[recipe.metric]["mean"] >= recipe.learn_threshold if records and keys else None
        summary["arms"][arm]["seeds"] = {"seeds": sorted(r["spec"]["seed"] for r in records), "final": finals,
                                         "learns": learns}  # fmt: skip
    if seeds["lora"] and seeds["loraplus"]:
        by_seed = {arm: {r["spec"]["seed"]: r for r in records} for arm, records in seeds.items()}
        summary["paired"] = {k: paired_difference(*({s: as_float(r["final"].get(k)) for s, r in by_seed[arm].items()}
                                                    for arm in ("lora", "loraplus"))) for k in keys}  # fmt: skip
        summary["steps_to_target"] = {k: steps_to_target(seeds["lora"], seeds["loraplus"], k, recipe.steps)
                                      for k in keys}  # fmt: skip
        summary["curves"] = {arm: {k: band(records, k) for k in keys} for arm, records in seeds.items()}
    if auto := [r for r in found if r["spec"]["kind"] == "auto"]:
        best = best_grid_cell(states)
        reference = seeds[best[0]] if best else []
        summary["auto_reference"] = {"arm": best[0], "cell": list(best[1])} if best else None
        keys = metric_keys(auto + reference)
        summary["auto"] = summarise_auto(auto, reference, keys, recipe.steps, reference_lrs(states))
        summary["auto_runs"] = {"runs": len(auto), "cpu_hours": sum(r["timing"]["cpu_s"] for r in auto) / 3600}
    return summary


def _reach(reach: dict[str, Any]) -> str:
    """Where LoRA+ reaches LoRA's final value, in words."""
    plus = reach["loraplus"]
    if plus["steps"] is None:
        return f"LoRA+ never reaches LoRA's final {reach['target']:.4f}"
    bound = " (≥: reached by the first evaluation)" if plus["bound"] else ""
    at = f"step {plus['steps']:.0f}, speed-up {plus['speedup']:.2f}×{bound}"
    return f"LoRA+ reaches LoRA's final {reach['target']:.4f} at {at}"


def _arm_row(arm: str, info: dict[str, Any], keys: list[str]) -> str:
    choice = f"{info['choice']['lr']:g}, {info['choice']['ratio']:g}" if info["choice"] else "–"
    grid = ", ".join(f"{v:g}" for v in info["lrs"]) + (" (capped)" if info["capped"] else "")
    seeds = info.get("seeds", {})
    values = [format_interval(seeds.get("final", {}).get(k)) for k in keys]
    cells = [arm, choice, f"{info['cells_rung']} / {info['cells_full']}", grid, str(len(seeds.get("seeds", [])))]
    learns = seeds.get("learns")
    return "| " + " | ".join([*cells, *values, "–" if learns is None else str(learns)]) + " |"


def _horizon(arm: str, bias: dict[str, Any]) -> str:
    """The short-horizon bias of an arm's grid, in words."""
    rung, full = (f"(η_A {c[0]:g}, λ {c[1]:g})" for c in (bias["rung_best"], bias["full_best"]))
    return (
        f"- short horizon, {arm}: of the {bias['finalists']} cells run to N, rung 0 ranked {rung} first and N "
        f"ranked {full} first (η_A ×{bias['lr_factor']:.3g}, B's rate ×{bias['b_factor']:.3g})."
    )


def markdown(summary: dict[str, Any]) -> str:
    """``report.md``: one section per task and init."""
    lines = ["# Evidence v2: LoRA vs LoRA+", "", "Generated from the run records by "
             "`python -m benchmarks.evidence --out <this folder> --phases report`.", ""]  # fmt: skip
    for name, task in summary.items():
        keys = list(task.get("paired", {}))
        lines += [f"## {name}", ""]
        if pilot := task.get("pilot"):
            final = ", ".join(f"{k} {v:.4f}" for k, v in pilot["final"].items() if k != "step")
            lines += [f"Pilot (η_A {pilot['spec']['lr']:g}, λ {pilot['spec']['ratio']:g}, scored on the selection "
                      f"split): {final} at step {pilot['final'].get('step')}, {pilot['step_cpu_s']:.3f} CPU s/step; "
                      f"learns: {pilot['learns']}.", ""]  # fmt: skip
        split = held_out_split(task["recipe"])
        if task["runs"]:
            header = ["arm", "choice (η_A, λ)", "cells rung 0 / N", "η_A grid", "seeds"]
            header += [f"{split} {k}" for k in keys]
            lines += ["| " + " | ".join([*header, "learns"]) + " |", "|" + "---|" * (len(header) + 1)]
            lines += [_arm_row(arm, info, keys) for arm, info in task["arms"].items()]
        else:
            lines.append("No grid: this task has no selection or seed runs, so no best cell to compare with.")
        lines.append("")
        for key in keys:
            diff = task["paired"][key]
            lines.append(f"- {key}: paired LoRA+ − LoRA {format_interval(diff, 4)} (95 % t-interval, n = {diff['n']}); "
                         f"{_reach(task['steps_to_target'][key])}.")  # fmt: skip
        lines += [_horizon(arm, info["horizon"]) for arm, info in task["arms"].items() if info.get("horizon")]
        lines.append(f"- {task['runs']} runs, {task['cpu_hours']:.2f} CPU hours.")
        if extra := task.get("outcome_runs"):
            lines.append(f"- {extra['runs']} outcome runs: cells a budgets search or the step-down rule chose, "
                         f"trained as seed runs (budgets/report.md), {extra['cpu_hours']:.2f} CPU hours.")  # fmt: skip
        lines.append("")
        if "auto" in task:
            lines += markdown_auto(task["auto"], task["auto_reference"], split)
            lines += [f"- {task['auto_runs']['runs']} runs, {task['auto_runs']['cpu_hours']:.2f} CPU hours.", ""]
    return "\n".join(lines) + "\n"


def write_report(runner: Runner) -> dict[str, Any]:
    """Write ``summary.json``, ``figures/`` and ``report.md`` under the results folder; print the markdown.

    Args:
        runner: The runner whose folder, recipes and protocol the records were made with.

    Returns:
        The summary, keyed ``<task>-<init>``.
    """
    out = runner.paths.out
    summary = {}
    for task in runner.recipes:
        for init in runner.inits:
            if (found := summarise(runner, task, init)) is not None:
                summary[f"{task}-{init}"] = found
    write_json_atomic(out / "summary.json", summary)
    for name, task in summary.items():
        if task["runs"]:  # a task without a grid has nothing to plot
            figures.plot_selection(name, task["arms"], out / "figures" / f"selection_{name}.png")
        if "curves" in task:
            split = held_out_split(task["recipe"])
            figures.plot_curves(name, task["curves"], out / "figures" / f"curves_{name}.png", split)
    text = markdown(summary)
    (out / "report.md").write_text(text)
    print(text, flush=True)
    return summary
