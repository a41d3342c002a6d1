"""How the trials' length moves ``lr: auto``'s choice: the short-horizon bias against the search's budget.

The ``budgets`` phase (only when named) searches again, without training, each seed of the ``auto-lr-rows``
variant (``lr: auto`` at the default λ, its rows drawn per seed, as the package runs it) with its budget of
extra steps multiplied by each ``--budget-factors`` value. A larger budget lengthens every trial (the rungs
scale with it), so the choices across factors show whether longer trials rank the η_A values as the full
run does. No run is trained for a new choice: a run that chose a cell trains exactly as a run with that
cell fixed, so its outcome is read from any committed dev-scored run of that (seed, η_A, λ) where one exists
(the ``seed`` and ``auto`` records), and left open where none does.

Records: ``budgets/<task>/<run id>.json`` (the spec and the search record); the phase writes
``budgets/report.md`` from them and the runs' records.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.evidence.common import Record, read_records
from benchmarks.evidence.runs import RunSpec
from benchmarks.evidence.search import Cell


def scaled_budget(spec: RunSpec, factor: float) -> RunSpec:
    """``spec`` (a searched ``auto`` variant) with its ``search_budget`` of steps multiplied by ``factor`` and a
    variant name that says so (``auto-lr-rows-budgetx2``), so its record has its own id.

    Raises:
        ValueError: If ``spec`` sets no ``search_budget`` in steps, or ``factor`` is not above 0.
    """
    settings = dict(spec.settings)
    budget = settings.get("search_budget")
    if not isinstance(budget, int) or not factor > 0:
        raise ValueError(f"scaled_budget needs a search_budget in steps and a factor > 0, got {budget!r}, {factor!r}")
    settings["search_budget"] = max(1, math.floor(budget * factor))
    return replace(spec, variant=f"{spec.variant}-budgetx{factor:g}", settings=tuple(settings.items()))


def trained_cell(record: Record) -> Cell:
    """The (η_A, λ) a run trained with: its search's choice where it searched, else its spec's values."""
    chosen = (record.get("search") or {}).get("chosen") or record["spec"]
    return float(chosen["lr"]), float(chosen["ratio"])


def outcomes(records: list[Record]) -> dict[tuple[int, float, float], float]:
    """Final held-out loss per (seed, η_A, λ) of every dev-scored run (``seed`` and ``auto`` kinds) that finished.

    Runs that trained the same cell on the same seed train alike (a search restores the state it found), so
    where several records hold one key they agree to rounding; the first in path order is kept.
    """
    found: dict[tuple[int, float, float], float] = {}
    for record in records:
        if record["spec"]["kind"] in ("seed", "auto") and record.get("final", {}).get("loss") is not None:
            found.setdefault((record["spec"]["seed"], *trained_cell(record)), float(record["final"]["loss"]))
    return found


def _choice(search: dict[str, Any], loss: float | None) -> str:
    """``4.64e-3 (fell back) → 0.4138`` for one search's choice and its run's loss (``→ –`` where none ran)."""
    chosen = search["chosen"]
    back = " (fell back)" if search.get("fell_back") else ""
    return f"{chosen['lr']:.3g}{back} → {'–' if loss is None else f'{loss:.4f}'}"


def budget_table(base: list[Record], scaled: dict[float, list[Record]], runs: list[Record]) -> list[str]:
    """One task's table: per seed, the choice at the variant's own budget and at each scaled one, each with the
    dev loss of a run that trained that cell on that seed (``–`` where no such run exists).

    Args:
        base: The ``auto-lr-rows`` records (their search and their own run).
        scaled: Per budget factor, the records of :func:`scaled_budget` searches.
        runs: Every run record of the task, for :func:`outcomes`.
    """
    losses = outcomes(runs)
    by_seed = {r["spec"]["seed"]: r for r in base}
    factors = sorted(scaled)
    extra = [f"budget ×{f:g} ({_steps(scaled[f])} steps)" for f in factors]
    lines = [f"| seed | budget ×1 ({_steps(base)} steps) | " + " | ".join(extra) + " |",
             "|---|---|" + "---|" * len(factors)]  # fmt: skip
    for seed, record in sorted(by_seed.items()):
        cells = [_choice(record["search"], float(record["final"]["loss"]))]
        for f in factors:
            match = [r for r in scaled[f] if r["spec"]["seed"] == seed]
            search = match[0]["search"] if match else None
            cells.append(_choice(search, losses.get((seed, *trained_cell(match[0])))) if search else "–")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return lines


def _steps(records: list[Record]) -> str:
    """The budget of extra steps the records' searches had (e.g. ``40``), or ``–``."""
    budgets = sorted({r["search"]["budget_steps"] for r in records if r.get("search")})
    return "/".join(str(b) for b in budgets) or "–"


def write_budget_report(out: Path, tasks: list[str]) -> Path:
    """``budgets/report.md`` from the records of the ``budgets`` phase and the runs of ``tasks`` (see the module);
    a task without such records is left out."""
    intro = ("Generated from the records by `python -m benchmarks.evidence --phases budgets`. Each entry: the η_A "
             "the search chose (λ = 4), and the dev loss of a committed run of that cell on that seed.")  # fmt: skip
    lines = ["# lr: auto against the length of its trials", "", intro, ""]
    for task in tasks:
        scaled_records = read_records(out / "budgets" / task)
        if not scaled_records:
            continue
        runs = read_records(out / "runs" / task)
        base = [r for r in runs if r["spec"].get("variant") == "auto-lr-rows"]
        scaled: dict[float, list[Record]] = {}
        for record in scaled_records:
            factor = float(record["spec"]["variant"].rsplit("budgetx", 1)[1])
            scaled.setdefault(factor, []).append(record)
        lines += [f"## {task}", "", *budget_table(base, scaled, runs), ""]
    path = out / "budgets" / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
