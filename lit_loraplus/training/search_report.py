"""Telling the user what an ``lr="auto"`` / ``ratio="auto"`` search did: console lines, logger summary, JSON file.

Nothing is logged at a step before 0, so loggers that require increasing steps (W&B, TensorBoard)
keep their order: a few scalars at step 0 (:data:`SUMMARY_KEYS`), on W&B a table of every trial,
and ``loraplus_search.json`` (:meth:`~lit_loraplus.core.halving.SearchOutcome.to_dict`) in each
logger's folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lit_loraplus.core.halving import SearchOutcome

SEARCH_FILE = "loraplus_search.json"
SUMMARY_KEYS = ("search/lr", "search/ratio", "search/score", "search/extra_steps")
TABLE_KEY = "search/trials"
TABLE_COLUMNS = ["lr", "ratio", "steps", "score", "rungs_reached"]


def _passed_over(outcome: SearchOutcome) -> bool:
    """Whether the run trains with another cell than the search's best (its fallback to the defaults)."""
    return (outcome.lr, outcome.ratio) != (outcome.best.lr, outcome.best.ratio)


def describe(outcome: SearchOutcome) -> list[str]:
    """The console lines of a search: its plan and cost, then the choice."""
    if not outcome.rungs:
        return [f"lit-loraplus: auto has one cell, η_A={outcome.lr:g}, λ={outcome.ratio:g}: nothing to search"]
    plan = ", ".join(f"{r.cells} × {r.steps}" for r in outcome.rungs)
    share = outcome.extra_steps / outcome.total_steps
    corrected = (
        f" (best cell η_A={outcome.best.lr:g} × lr_factor {outcome.lr_factor:g})" if outcome.lr_factor != 1 else ""
    )
    if outcome.fell_back:
        best = (
            f": its best cell (η_A={outcome.best.lr:g}, λ={outcome.best.ratio:g}, held-out loss "
            f"{outcome.best.score:.4f})"
            if _passed_over(outcome)
            else f", which is also its best cell: its held-out loss {outcome.best.score:.4f}"
        )
        chose = (
            f"lit-loraplus: auto chose η_A={outcome.lr:g}, λ={outcome.ratio:g}, falling back to the cell nearest "
            f"the defaults{best} did no better than a constant prediction ({outcome.constant_score:.4f})"
        )
    elif outcome.stepped_down:
        factor = f" (× lr_factor {outcome.lr_factor:g})" if outcome.lr_factor != 1 else ""
        chose = (
            f"lit-loraplus: auto chose η_A={outcome.lr:g}, λ={outcome.ratio:g}{factor}, one value below its best "
            f"cell (η_A={outcome.best.lr:g}, λ={outcome.best.ratio:g}, held-out loss {outcome.best.score:.4f}) where "
            "that was the largest value searched (`search_edge: step_down`)"
        )
    else:
        chose = (
            f"lit-loraplus: auto chose η_A={outcome.lr:g}, λ={outcome.ratio:g}{corrected}, held-out loss "
            f"{outcome.best.score:.4f}"
        )
    return [
        f"lit-loraplus: auto search over {len(outcome.trials)} cells (η_A, λ), rungs of cells × steps: {plan}; "
        f"{outcome.extra_steps} extra optimizer steps ({share:.1%} of the run's {outcome.total_steps}, budget "
        f"{outcome.budget_steps}), scored on {outcome.score_batches} batches of {outcome.scored_on}",
        chose,
    ]


def prior_warning(outcome: SearchOutcome, hint: str = "") -> str | None:
    """The warning for a search whose best cell scored no better than a constant prediction (None otherwise).

    Args:
        outcome: The search's outcome.
        hint: A sentence appended to the warning (the module's advice for its task), or empty.
    """
    if not outcome.learned_only_the_prior:
        return None
    settings = ", ".join(f"`{key}`" for key, value in outcome.requested.items() if value == "auto")
    cell = f"η_A={outcome.best.lr:g}, λ={outcome.best.ratio:g}"
    if outcome.fell_back and _passed_over(outcome):
        action = (
            f"so the run trains with the cell nearest the defaults (η_A={outcome.lr:g}, λ={outcome.ratio:g}) instead "
            f"of the best cell ({cell}), whose win is close to a guess"
        )
        keep = ", or set `search_fallback: false` to train with the best cell anyway"
    elif outcome.fell_back:
        action = (
            f"so its win ({cell}) is close to a guess; it is also the cell nearest the defaults, which the run "
            "trains with"
        )
        keep = ""
    else:
        action = f"so the choice of {settings} ({cell}) is close to a guess"
        keep = ""
    return (
        f"lit-loraplus: auto's best cell scored {outcome.best.score:.4f} on its held-out rows, no better than "
        f"predicting their label balance (or mean) for every row ({outcome.constant_score:.4f}): the trials ended "
        f"before the model learned anything beyond the prior, {action}. Give the search longer trials (a larger "
        f"`search_budget`, or fewer `search_lrs` / `search_ratios`), or set {settings} yourself{keep}.{hint}"
    )


def edge_warning(outcome: SearchOutcome) -> str | None:
    """The warning for a choice at an end of the values searched (:attr:`SearchOutcome.at_edge`; None otherwise)."""
    if not outcome.at_edge:
        return None
    longest = max(t.steps for t in outcome.trials)
    parts = []
    for key, end in outcome.at_edge.items():
        name, setting = ("η_A", "search_lrs") if key == "lr" else ("λ", "search_ratios")
        values = sorted({getattr(t, key) for t in outcome.trials})
        chosen = getattr(outcome.best, key)
        searched = f"the {end} of the {len(values)} values it searched ({values[0]:g} to {values[-1]:g})"
        if end == "largest" and outcome.stepped_down:
            parts.append(
                f"{name}={chosen:g}, its best cell's, is {searched}: it beat nothing larger, and the trials ({longest} "
                f"steps at most) favour a larger value than the whole run would, as short trials tend to. The run "
                f"trains with the next value below, {name}={values[-2]:g} (`model.search_edge=keep` trains with "
                f"{chosen:g}). To let a larger value compete, search larger values (`model.{setting}`) or give the "
                f"search longer trials (a larger `search_budget`)"
            )
        elif end == "largest":
            parts.append(
                f"{name}={chosen:g} is {searched}: a larger value may be better still, or the trials ({longest} steps "
                f"at most) favour a larger value than the whole run would, as short trials tend to. Before relying "
                f"on it, compare a run at {name}={values[-2]:g}, give the search longer trials (a larger "
                f"`search_budget`), or search larger values (`model.{setting}`)"
            )
        else:
            parts.append(
                f"{name}={chosen:g} is {searched}: a smaller value may be better. Search smaller values "
                f"(`model.{setting}`)"
            )
    which = "best cell" if outcome.stepped_down else "choice"
    return f"lit-loraplus: auto's {which} is at the edge of its search. " + "; ".join(parts) + "."


def _folders(trainer: L.Trainer) -> list[Path]:
    """Where each logger keeps its files (W&B: the run's ``files`` folder, which it uploads)."""
    folders = []
    for logger in trainer.loggers:
        folder = logger.experiment.dir if isinstance(logger, WandbLogger) else getattr(logger, "log_dir", None)
        folder = folder or logger.save_dir
        if folder is not None and Path(folder) not in folders:
            folders.append(Path(folder))
    return folders


def report_search(trainer: L.Trainer, outcome: SearchOutcome, prior_hint: str = "") -> list[Path]:
    """Print the search's lines and, on global rank 0, log its summary and write its record.

    Args:
        trainer: The fitting trainer.
        outcome: The search's outcome.
        prior_hint: Appended to the warning of a search that did no better than a constant prediction.

    Returns:
        The ``loraplus_search.json`` files written (none off rank 0 or without a logger).
    """
    for line in describe(outcome):
        rank_zero_info(line)
    for warning in (prior_warning(outcome, prior_hint), edge_warning(outcome)):
        if warning:
            rank_zero_warn(warning)
    if not trainer.is_global_zero:
        return []
    record: dict[str, Any] = outcome.to_dict()
    summary = dict(zip(SUMMARY_KEYS, (outcome.lr, outcome.ratio, outcome.best.score, outcome.extra_steps), strict=True))
    rows = [[t["lr"], t["ratio"], t["steps"], (t["scores"] or [None])[-1], len(t["scores"])] for t in record["trials"]]
    for logger in trainer.loggers:
        logger.log_metrics(summary, step=0)
        if isinstance(logger, WandbLogger):
            logger.log_table(key=TABLE_KEY, columns=TABLE_COLUMNS, data=rows, step=0)
    written = []
    for folder in _folders(trainer):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SEARCH_FILE).write_text(json.dumps(record, indent=2) + "\n")
        written.append(folder / SEARCH_FILE)
    return written
