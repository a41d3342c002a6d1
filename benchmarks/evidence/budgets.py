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

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.evidence.common import Record, format_interval, paired_difference, read_records
from benchmarks.evidence.runs import RunSpec
from benchmarks.evidence.search import Cell
from lit_loraplus.core.search import DEFAULT_LR, halving_rungs, plan_cost, step_down
from lit_loraplus.core.settings import DEFAULT_RATIO
from lit_loraplus.training.search import search_settings


def scaled_budget(spec: RunSpec, factor: float) -> RunSpec:
    """``spec`` (a searched ``auto`` variant) with its ``search_budget`` of steps multiplied by ``factor`` and a
    variant name that says so (``auto-lr-rows-budgetx2``), so its record has its own id.

    A smaller budget than the default shortest first rung pays for (``factor`` below 1) gets the longest first
    rung it does pay for as ``search_min_steps`` (1 at least), so the search runs where the default would refuse.

    Raises:
        ValueError: If ``spec`` sets no ``search_budget`` in steps, ``factor`` is not above 0, or the scaled budget
            pays for no first rung at all.
    """
    settings = dict(spec.settings)
    budget = settings.get("search_budget")
    if not isinstance(budget, int) or not factor > 0:
        raise ValueError(f"scaled_budget needs a search_budget in steps and a factor > 0, got {budget!r}, {factor!r}")
    settings["search_budget"] = max(1, math.floor(budget * factor))
    search = search_settings(settings)
    cells = len(search.grid(spec.lr, spec.ratio))
    first = settings["search_budget"] // plan_cost(halving_rungs(cells, 1, search.halving)) if cells > 1 else 0
    if cells > 1 and first < search.min_steps:
        if first < 1:
            raise ValueError(f"a budget of {settings['search_budget']} steps pays for no rung of {cells} cells")
        settings["search_min_steps"] = first
    return replace(spec, variant=f"{spec.variant}-budgetx{factor:g}", settings=tuple(settings.items()))


def trained_cell(record: Record) -> Cell:
    """The (η_A, λ) a run trained with: its search's choice where it searched, else its spec's values."""
    chosen = (record.get("search") or {}).get("chosen") or record["spec"]
    return float(chosen["lr"]), float(chosen["ratio"])


def stepped_cell(record: Record) -> Cell:
    """The cell a run trains with under ``search_edge: step_down``, the package's default, for a record made with
    ``keep``: its search's best cell, one value below on a setting where that was the largest searched
    (:func:`~lit_loraplus.core.search.step_down`); its trained cell where the search fell back or searched nothing."""
    search = record.get("search") or {}
    if not search.get("rungs") or search.get("fell_back"):
        return trained_cell(record)
    best = search["best_cell"]
    return step_down([(t["lr"], t["ratio"]) for t in search["trials"]], (best["lr"], best["ratio"]))


def outcomes(records: list[Record]) -> dict[tuple[int, float, float], float]:
    """Final held-out loss per (seed, η_A, λ) of every dev-scored run (``seed``, ``auto``, ``outcome``) that finished.

    Runs that trained the same cell on the same seed with the same code train alike (a search restores the state
    it found); where several records hold one key, the first in path order is kept (``auto`` before ``outcome``
    before ``seed``). SST-2's grid seed runs were trained before evaluation loaders had their own generator: each
    evaluation drew a base seed from torch's global generator, so their dropout masks, and nothing else, differ
    from a later run of the same cell and seed from the step after the first evaluation (seeds 1–5 at
    2.15e-3, λ = 4: identical to step 40, final dev loss 0.3937/0.3834/0.3871/0.3801/0.3748 against
    0.3893/0.3871/0.3950/0.3719/0.3700). Rerun with the loaders' old behaviour, seed 1 reproduces the grid record's
    steps 41–42 exactly. The one other seed run with a later run of its cell (CoLA, seed 4, 1e-3) matches it step
    for step.
    """
    found: dict[tuple[int, float, float], float] = {}
    for record in records:
        if record["spec"]["kind"] in ("seed", "auto", "outcome") and record.get("final", {}).get("loss") is not None:
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
    lines = ["| " + " | ".join(["seed", f"budget ×1 ({_steps(base)} steps)", *extra]) + " |",
             "|---|---|" + "---|" * len(factors)]  # fmt: skip
    for seed, record in sorted(by_seed.items()):
        cells = [_choice(record["search"], float(record["final"]["loss"]))]
        for f in factors:
            match = [r for r in scaled[f] if r["spec"]["seed"] == seed]
            search = match[0]["search"] if match else None
            cells.append(_choice(search, losses.get((seed, *trained_cell(match[0])))) if search else "–")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return lines


def budget_differences(
    base: list[Record],
    scaled: dict[float, list[Record]],
    runs: list[Record],
    best_cell: Cell | None,
    cell_of: Callable[[Record], Cell] = trained_cell,
) -> list[str]:
    """One task's paired dev-loss differences, per budget: the runs of its choices (where they exist) against every
    run of the best grid cell on the same seed (its seed runs, and ``auto`` or ``outcome`` runs that trained it),
    against the ``random`` variant's and against every run of the package's defaults (η_A, λ) on the same seed
    (the ``default`` variant's, and runs whose search chose or fell back to that cell), seed by seed.

    Args:
        base: The ``auto-lr-rows`` records (their search and their own run).
        scaled: Per budget factor, the records of :func:`scaled_budget` searches.
        runs: Every run record of the task, for :func:`outcomes`.
        best_cell: The best grid cell (η_A, λ) (the report's ``auto_reference``), or None to leave it out.
        cell_of: The cell a record's run trains with (:func:`trained_cell`; :func:`stepped_cell` for the choices
            ``search_edge: step_down`` makes).
    """
    losses = outcomes(runs)
    random = {r["spec"]["seed"]: float(r["final"]["loss"]) for r in runs if r["spec"].get("variant") == "random"}
    defaults = {k[0]: v for k, v in losses.items() if k[1:] == (DEFAULT_LR, DEFAULT_RATIO)}
    baselines = {"random": random, "defaults": defaults}
    if best_cell is not None:
        baselines = {"best cell": {k[0]: v for k, v in losses.items() if k[1:] == best_cell}} | baselines
    columns = {f: records for f, records in ({1.0: base} | scaled).items() if records}
    lines = []
    for factor in sorted(columns):
        chosen = {r["spec"]["seed"]: losses.get((r["spec"]["seed"], *cell_of(r))) for r in columns[factor]}
        found = {seed: loss for seed, loss in chosen.items() if loss is not None}
        share = statistics.fmean(r["search"]["extra_steps"] / r["search"]["total_steps"] for r in columns[factor])
        parts = [f"{len(found)} of {len(chosen)} choices have a run"]
        for name, baseline in baselines.items():
            d = paired_difference(baseline, found)
            if d["n"] >= 2:
                parts.append(f"− {name} {format_interval(d, 4)} (n = {d['n']}; lower on {d['below']}, higher on "
                             f"{d['above']}, signed-rank p {_p(d['signed_rank_p'])})")  # fmt: skip
        lines.append(f"- budget ×{factor:g} ({share:.1%} extra steps): " + "; ".join(parts))
    return lines


def step_down_changes(base: list[Record], scaled: dict[float, list[Record]], runs: list[Record]) -> list[str]:
    """One task's choices that ``search_edge: step_down`` changes, per budget: how many, and each one's dev loss
    with the step down minus with the best cell (``keep``), from runs of those cells on the same seed.

    Args:
        base: The ``auto-lr-rows`` records (their search and their own run).
        scaled: Per budget factor, the records of :func:`scaled_budget` searches.
        runs: Every run record of the task, for :func:`outcomes`.
    """
    losses = outcomes(runs)
    lines = []
    for factor, records in sorted(({1.0: base} | scaled).items()):
        changed = [r for r in records if stepped_cell(r) != trained_cell(r)]
        moves = []
        for r in changed:
            seed = r["spec"]["seed"]
            kept, stepped = losses.get((seed, *trained_cell(r))), losses.get((seed, *stepped_cell(r)))
            moves.append(f"{'–' if kept is None or stepped is None else f'{stepped - kept:+.4f}'} (seed {seed})")
        text = f": {', '.join(moves)}" if moves else ""
        lines.append(f"- budget ×{factor:g}: {len(changed)} of {len(records)} choices stepped down{text}")
    return lines


def last_rung_moves(base: list[Record], scaled: dict[float, list[Record]]) -> list[str]:
    """One task's table of how each η_A's held-out loss moved over the last rung its trials reached, per budget:
    on how many of the trials that reached a second rung it rose, and the median change. A rate too large for the
    whole run shows here once the trials are long enough for its loss to turn upward.

    Args:
        base: The ``auto-lr-rows`` records (their search and their own run).
        scaled: Per budget factor, the records of :func:`scaled_budget` searches.
    """
    columns = {f: records for f, records in ({1.0: base} | scaled).items() if records}
    moves: dict[float, dict[float, list[float]]] = {}
    longest = {}
    for factor, records in columns.items():
        longest[factor] = max(t["steps"] for r in records for t in r["search"]["trials"])
        for record in records:
            for trial in record["search"]["trials"]:
                scores = trial["scores"]
                if len(scores) >= 2 and None not in scores[-2:]:
                    moves.setdefault(float(trial["lr"]), {}).setdefault(factor, []).append(scores[-1] - scores[-2])
    factors = sorted(columns)
    lines = ["| η_A | " + " | ".join(f"budget ×{f:g} (trials ≤ {longest[f]} steps)" for f in factors) + " |",
             "|---|" + "---|" * len(factors)]  # fmt: skip
    for lr in sorted(moves):
        cells = []
        for f in factors:
            found = moves[lr].get(f, [])
            rose = sum(d > 0 for d in found)
            cells.append(f"rose on {rose} of {len(found)}, median {statistics.median(found):+.3f}" if found else "–")
        lines.append(f"| {lr:g} | " + " | ".join(cells) + " |")
    return lines


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def _steps(records: list[Record]) -> str:
    """The budget of extra steps the records' searches had (e.g. ``40``), or ``–``."""
    budgets = sorted({r["search"]["budget_steps"] for r in records if r.get("search")})
    return "/".join(str(b) for b in budgets) or "–"


def write_budget_report(out: Path, tasks: list[str]) -> Path:
    """``budgets/report.md`` from the records of the ``budgets`` phase and the runs of ``tasks`` (see the module);
    a task with neither ``budgets`` records nor searched ``auto-lr-rows`` runs is left out."""
    intro = ("Generated from the records by `python -m benchmarks.evidence --phases budgets`. Each entry: the η_A "
             "the search chose (λ = 4), and the dev loss of a committed run of that cell on that seed.")  # fmt: skip
    lines = ["# lr: auto against the length of its trials", "", intro, ""]
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for task in tasks:
        scaled_records = read_records(out / "budgets" / task)
        runs = read_records(out / "runs" / task)
        base = [r for r in runs if r["spec"].get("variant") == "auto-lr-rows" and r.get("search")]
        if not (scaled_records or base):
            continue
        scaled: dict[float, list[Record]] = {}
        for record in scaled_records:
            factor = float(record["spec"]["variant"].rsplit("budgetx", 1)[1])
            scaled.setdefault(factor, []).append(record)
        key = f"{task}-{(scaled_records or base)[0]['spec']['init']}"
        cell = summary.get(key, {}).get("auto_reference", {}).get("cell")
        best_cell = (float(cell[0]), float(cell[1])) if cell else None
        lines += [f"## {task}", "", *budget_table(base, scaled, runs), ""]
        lines += ["Paired dev-loss differences (this budget's choices − each baseline, seed by seed):", ""]
        lines += [*budget_differences(base, scaled, runs, best_cell), ""]
        lines += ["With `search_edge: step_down`, the package's default (these searches ran with `keep`): a best",
                  "cell at the largest η_A trains one value below. The choices it changes (dev loss with the step",
                  "down − with the best cell, same seed), then the paired differences as above:", ""]  # fmt: skip
        lines += [*step_down_changes(base, scaled, runs), ""]
        lines += [*budget_differences(base, scaled, runs, best_cell, cell_of=stepped_cell), ""]
        lines += ["Held-out loss over the last rung each trial reached (trials that reached a second rung):", ""]
        lines += [*last_rung_moves(base, scaled), ""]
    path = out / "budgets" / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
