"""The zero-tuning comparison (phase ``auto``): ``lr``/``ratio="auto"`` against the grid, the defaults and chance.

On the grid's fresh seeds, scored like the seed runs (GLUE dev; the causal task's test file), each task trains
these variants:

    auto        lr and ratio "auto" over the grid's η_A values × λ ∈ {1, 2, 4, 8, 16, 32}
    auto-ratio  ratio "auto" (λ ∈ {1, ..., 32}) at the package's default η_A
    auto-lr     lr "auto" over the grid's η_A values at the package's default λ
    auto-lr-rows  auto-lr with its search's rows drawn per seed (``search_seed`` = the seed, the package's
                default); the three variants above fix them (``search_seed`` = 0) for every seed, so their
                seeds never vary the rows the trials see
    default     the package's fixed defaults (η_A, λ)
    random      one cell of the ``auto`` search space, drawn per seed (the baseline a search must beat)

Each search gets the package's default budget (10 % extra steps) or, where that is too small for its
cells (``auto`` at these run lengths), the least its plan accepts; the report gives the share of N it took.
The searches are scored on training rows held out from their trials (``search_score_on="train"``), never on
dev, and train on the rows the grid trained on; the best grid cell's seed runs are the reference. Pairs share
the seed, hence the data order and the initialisation.
"""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

from benchmarks.evidence.common import Record, as_float, format_interval, paired_difference, t_interval
from benchmarks.evidence.runs import RunSpec
from benchmarks.evidence.search import ArmSearch, Cell, best
from benchmarks.evidence.tasks import Protocol, Recipe
from lit_loraplus.core.search import DEFAULT_LR, SEARCH_RATIOS, SearchSettings, halving_rungs, plan_cost
from lit_loraplus.core.settings import DEFAULT_RATIO

VARIANTS = ("auto", "auto-ratio", "auto-lr", "default", "random", "auto-lr-rows")
DEFAULT_BUDGET = SearchSettings().budget
FIXED_ROWS_SEED = 0  # the search rows of `auto`, `auto-ratio` and `auto-lr`: one draw shared by every seed


def search_space(protocol: Protocol) -> list[Cell]:
    """The cells the ``auto`` variant searches and ``random`` draws from: the grid's η_A × λ ∈ {1, ..., 32}."""
    return [(lr, float(ratio)) for lr in sorted(protocol.lrs) for ratio in SEARCH_RATIOS]


def random_cell(protocol: Protocol, task: str, init: str, seed: int) -> Cell:
    """The ``random`` variant's cell for one seed: a fixed draw (string-seeded, so the same on every machine)."""
    return random.Random(f"{task}/{init}/{seed}").choice(search_space(protocol))


def needed_budget(cells: int, steps: int) -> int:
    """Extra steps a search over ``cells`` cells takes: the default 10 % of ``steps``, or what its shortest
    acceptable plan needs where that is more."""
    settings = SearchSettings()
    shortest = plan_cost(halving_rungs(cells, 1, settings.halving)) * settings.min_steps if cells > 1 else 0
    return max(1, math.floor(DEFAULT_BUDGET * steps), shortest)


def variant_spec(variant: str, task: str, init: str, seed: int, protocol: Protocol, recipe: Recipe) -> RunSpec:
    """The run of one variant on one seed (see the module docstring).

    Raises:
        ValueError: For an unknown variant.
    """
    lrs = tuple(sorted(protocol.lrs))

    def search(lr: float | str, ratio: float | str, cells: int, rows_seed: int = FIXED_ROWS_SEED) -> RunSpec:
        budget = needed_budget(cells, recipe.steps)
        # `search_edge: keep`: these runs train with the search's best cell; what the package's default
        # `step_down` would have trained instead is read from the runs of that cell (budgets.edge_rule_lines).
        settings = (("search_lrs", lrs), ("search_ratios", SEARCH_RATIOS), ("search_budget", budget),
                    ("search_score_on", "train"), ("search_edge", "keep"), ("search_seed", rows_seed))  # fmt: skip
        return RunSpec(task, init, lr, ratio, seed, "auto", variant, settings)

    if variant == "auto":
        return search("auto", "auto", len(lrs) * len(SEARCH_RATIOS))
    if variant == "auto-ratio":
        return search(DEFAULT_LR, "auto", len(SEARCH_RATIOS))
    if variant == "auto-lr":
        return search("auto", DEFAULT_RATIO, len(lrs))
    if variant == "auto-lr-rows":
        return search("auto", DEFAULT_RATIO, len(lrs), rows_seed=seed)
    if variant == "default":
        return RunSpec(task, init, DEFAULT_LR, DEFAULT_RATIO, seed, "auto", variant)
    if variant == "random":
        return RunSpec(task, init, *random_cell(protocol, task, init, seed), seed, "auto", variant)
    raise ValueError(f"unknown auto variant {variant!r}: use one of {list(VARIANTS)}")


def search_differences(stored: dict[str, Any], replayed: dict[str, Any] | None, rtol: float = 0.0) -> list[str]:
    """What a search's replay does differently from its record: the plan, each cell's steps and the choice
    (exactly) and each cell's scores (to a relative tolerance). Empty: the record is the current code's.

    A search on one process is deterministic, so on the machine and libraries that made a record its replay
    gives every score exactly; another CPU or another build of the numerical libraries rounds differently
    (float32 sums in another order), which moves the scores by a few parts in a million without moving a cut.

    Args:
        stored: A record's ``search``.
        replayed: The same run's search with the current code (:func:`~benchmarks.evidence.runs.search_only`).
        rtol: The largest relative difference between a stored and a replayed score that counts as the same
            (0: exact).
    """
    if replayed is None:
        return ["the run no longer searches"]
    found = [f"{key}: {stored.get(key)} → now {replayed.get(key)}" for key in ("rungs", "chosen")
             if stored.get(key) != replayed.get(key)]  # fmt: skip
    for cell, (before, now) in _paired_trials(stored, replayed).items():
        if not _same_trial(before, now, rtol):
            found.append(f"η_A {cell[0]:g}, λ {cell[1]:g}: {_trial_text(before)} → now {_trial_text(now)}")
    return found


def _same_trial(before: dict[str, Any] | None, now: dict[str, Any] | None, rtol: float) -> bool:
    if before is None or now is None or before["steps"] != now["steps"]:
        return False
    return all(
        math.isclose(b, n, rel_tol=rtol, abs_tol=0.0) for b, n in zip(before["scores"], now["scores"], strict=True)
    )


def largest_score_change(stored: dict[str, Any], replayed: dict[str, Any]) -> float:
    """The largest relative difference between a stored and a replayed score, over the cells both tried at the
    same number of steps (0.0: every score exact).

    Args:
        stored: A record's ``search``.
        replayed: The same run's search with the current code.
    """
    return max((abs(n - b) / abs(b) if b else abs(n)
                for before, now in _paired_trials(stored, replayed).values()
                if before and now and before["steps"] == now["steps"]
                for b, n in zip(before["scores"], now["scores"], strict=True)), default=0.0)  # fmt: skip


def _paired_trials(
    stored: dict[str, Any], replayed: dict[str, Any]
) -> dict[tuple[float, float], tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Each cell either search tried, with its trial in the record and in the replay (None where not tried)."""
    trials = [{(t["lr"], t["ratio"]): t for t in search["trials"]} for search in (stored, replayed)]
    return {cell: (trials[0].get(cell), trials[1].get(cell)) for cell in sorted(set(trials[0]) | set(trials[1]))}


def _trial_text(trial: dict[str, Any] | None) -> str:
    return f"{trial['steps']} steps, scores {trial['scores']}" if trial else "not tried"


def best_grid_cell(states: dict[str, ArmSearch]) -> tuple[str, Cell] | None:
    """The arm and cell of lowest selection loss at N among the arms' choices (None until both have chosen)."""
    if not all(s.complete and s.choice for s in states.values()):
        return None
    arm = min(states, key=lambda a: (states[a].full_loss[states[a].choice], a))
    return arm, states[arm].choice


def reference_lrs(states: dict[str, ArmSearch]) -> dict[str, float] | None:
    """The η_A each searching variant's choice is measured against, in ladder steps, for the short-horizon bias.

    ``auto`` (η_A and λ searched): the best grid cell's η_A. ``auto-lr`` and ``auto-lr-rows`` (λ fixed at the
    default): the η_A of the lowest loss at N among the grid's cells with the default λ, or the best cell's where
    none was run to N. None until both arms have chosen.
    """
    found = best_grid_cell(states)
    if found is None:
        return None
    at_default = best({c: v for s in states.values() for c, v in s.full_loss.items() if c[1] == DEFAULT_RATIO})
    at_default_lr = (at_default or found[1])[0]
    return {"auto": found[1][0], "auto-lr": at_default_lr, "auto-lr-rows": at_default_lr}


def _chosen(record: Record) -> dict[str, Any]:
    """The (η_A, λ) a run trained with, the extra steps its search took (0 without a search) and, for a search, the
    cell its trials ranked best (``trial_best``): the chosen cell, unless the search fell back to the defaults."""
    search = record.get("search")
    if search:
        best = search.get("best_cell") or search["chosen"]
        return {"lr": search["chosen"]["lr"], "ratio": search["chosen"]["ratio"], "extra_steps": search["extra_steps"],
                "trial_best": {"lr": best["lr"], "ratio": best["ratio"]}}  # fmt: skip
    return {"lr": record["spec"]["lr"], "ratio": record["spec"]["ratio"], "extra_steps": 0}


def targets(paired: dict[str, Any], share: float) -> dict[str, bool | None]:
    """The zero-tuning targets for one variant (None where the baseline has no pairs yet).

    ``as_good_as_best_cell``: the paired dev-loss interval variant − best cell includes 0 or lies below it;
    ``beats_random``: the interval variant − random lies below 0; ``within_budget``: at most 10 % extra steps.
    """

    def interval(base: str) -> dict[str, Any] | None:
        diff = paired.get(base, {}).get("loss")
        return diff if diff and diff["n"] > 1 else None

    best, rand = interval("best_cell"), interval("random")
    return {
        "as_good_as_best_cell": best["low"] <= 0 if best else None,
        "beats_random": rand["high"] < 0 if rand else None,
        "within_budget": share <= DEFAULT_BUDGET + 1e-9,
    }


def summarise_auto(
    records: list[Record],
    reference: list[Record],
    keys: list[str],
    steps: int,
    reference_lr: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Each variant's dev results and its paired differences against the best grid cell, the defaults and random.

    Args:
        records: The ``auto`` runs of one task and init (every variant).
        reference: The seed runs of the best grid cell.
        keys: Held-out keys to compare (``loss`` first).
        steps: N (extra steps are also given as a share of it).
        reference_lr: Per searching variant, the full-length grid's best η_A (:func:`reference_lrs`): the η_A its
            trials ranked best is also given as ladder steps (×2.15) from it, the short-horizon bias (positive: the
            short trials favoured a larger η_A than the full-length grid), whether or not the search fell back.

    Returns:
        Per variant: ``seeds``, ``final`` (t-intervals per key), ``chosen`` per seed (with ``lr_steps_from_best``
        where η_A was searched), ``extra_steps`` (mean and share of N), ``paired`` against ``best_cell``,
        ``default`` and ``random`` (variant − baseline), and ``targets`` (:func:`targets`).
    """
    by_variant: dict[str, dict[int, Record]] = {}
    for record in records:
        by_variant.setdefault(record["spec"]["variant"], {})[record["spec"]["seed"]] = record
    baselines = {"best_cell": {r["spec"]["seed"]: r for r in reference}, **by_variant}
    summary: dict[str, Any] = {}
    for variant in (v for v in VARIANTS if v in by_variant):
        runs = by_variant[variant]
        chosen = [{"seed": seed, **_chosen(r)} for seed, r in sorted(runs.items())]
        if reference_lr and variant in reference_lr:
            for c in chosen:
                ranked = c.get("trial_best", c)["lr"]
                c["lr_steps_from_best"] = round(3 * math.log10(ranked / reference_lr[variant]))
        extra = statistics.fmean(c["extra_steps"] for c in chosen)
        paired = {
            base: {k: paired_difference(*({s: as_float(r["final"].get(k)) for s, r in side.items()}
                                          for side in (baselines[base], runs))) for k in keys}
            for base in ("best_cell", "default", "random") if base != variant and baselines.get(base)
        }  # fmt: skip
        summary[variant] = {
            "seeds": sorted(runs),
            "final": {k: t_interval([as_float(r["final"].get(k)) for r in runs.values()]) for k in keys},
            "chosen": chosen,
            "extra_steps": {"mean": extra, "share": extra / steps},
            "paired": paired,
            "targets": targets(paired, extra / steps),
        }
    return summary


def _passed_over(chosen: dict[str, Any]) -> str:
    """`` (best trial 0.00464, 4)`` where a search trained with another cell than its trials' best (its fallback)."""
    best = chosen.get("trial_best")
    if not best or (best["lr"], best["ratio"]) == (chosen["lr"], chosen["ratio"]):
        return ""
    return f" (best trial {best['lr']:.3g}, {best['ratio']:g})"


def _signs(key: str, diff: dict[str, Any]) -> str:
    """``; loss lower on 7 seeds, higher on 3, signed-rank p 0.11, HL median -0.012 [-0.03, 0.004]`` for a paired
    difference (empty without); the Hodges-Lehmann median and its 95 % interval where there are seeds enough."""
    if "below" not in diff:
        return ""
    p, median = diff.get("signed_rank_p"), diff.get("median")
    rank = "–" if p is None else f"{p:.3g}"
    middle = f", HL median {median['estimate']:.4f} [{median['low']:.4f}, {median['high']:.4f}]" if median else ""
    return f"; {key} lower on {diff['below']} seeds, higher on {diff['above']}, signed-rank p {rank}{middle}"


def markdown_auto(auto: dict[str, Any], reference: dict[str, Any] | None, split: str = "dev") -> list[str]:
    """The ``auto`` section of a task in ``report.md``: a table per variant (every held-out key, so a task metric
    shows a run that only learned the class prior, which its loss can hide), then the paired differences."""
    cell = f"η_A {reference['cell'][0]:g}, λ {reference['cell'][1]:g} ({reference['arm']})" if reference else "–"
    keys = list(next(iter(auto.values()))["final"]) if auto else []
    lines = [f"Zero-tuning (`lr`/`ratio` \"auto\") on the same seeds, scored on {split}; best grid cell: {cell}.", "",
             "| variant | seeds | " + " | ".join(f"{split} {k}" for k in keys)
             + " | extra steps (share of N) | chosen (η_A, λ) per seed | targets met |",
             "|---|---|" + "---|" * len(keys) + "---|---|---|"]  # fmt: skip
    for variant, info in auto.items():
        chosen = "; ".join(f"{c['lr']:.3g}, {c['ratio']:g}" + _passed_over(c) for c in info["chosen"])
        extra = info["extra_steps"]
        met = ", ".join(f"{name.replace('_', ' ')}: {'–' if ok is None else 'yes' if ok else 'no'}"
                        for name, ok in info["targets"].items())  # fmt: skip
        finals = " | ".join(format_interval(info["final"].get(k)) for k in keys)
        lines.append(f"| {variant} | {len(info['seeds'])} | {finals} | "
                     f"{extra['mean']:.0f} ({100 * extra['share']:.1f} %) | {chosen} | {met} |")  # fmt: skip
    lines.append("")
    for variant, info in auto.items():
        for base, diffs in info["paired"].items():
            found = [(k, d) for k, d in diffs.items() if d and d["n"]]
            if found:
                values = ", ".join(f"{k} {format_interval(d, 4)}" for k, d in found)
                lines.append(f"- {variant} − {base}: {values} (n = {found[0][1]['n']}{_signs(*found[0])})")
    return [*lines, ""]
