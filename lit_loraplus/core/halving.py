"""Successive halving over (η_A, λ) cells, and what a search found (pure Python).

:func:`successive_halving` only decides: which cells train how long, which survive a rung, which
wins. Training and scoring a cell are callables the caller gives (the training layer runs them
inside ``fit``; a test can give arithmetic), so the same loop serves any engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lit_loraplus.core.search import Rung, keep_best, search_ends


class AllDiverged(RuntimeError):
    """Every cell of a search's last rung diverged: there is nothing to choose."""


@dataclass
class Trial:
    """One cell of a search and how far it got.

    Attributes:
        lr: η_A.
        ratio: λ.
        steps: Optimizer steps it trained (fewer than its rung's if its loss stopped being finite).
        scores: Its held-out loss at the end of every rung it reached (inf: its training diverged).
    """

    lr: float
    ratio: float
    steps: int = 0
    scores: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        """The latest held-out loss (NaN before the first rung ends)."""
        return self.scores[-1] if self.scores else math.nan


def successive_halving(
    cells: Sequence[tuple[float, float]],
    rungs: Sequence[Rung],
    train: Callable[[int, int], int],
    score: Callable[[list[int]], list[float]],
) -> tuple[list[Trial], Trial]:
    """Run the rungs: train the surviving cells to each rung's length, score them, keep the best.

    Args:
        cells: The (η_A, λ) cells, in the order ties are broken in.
        rungs: :meth:`~lit_loraplus.core.search.SearchSettings.plan`; an empty plan picks the only cell.
        train: ``train(cell, steps)`` trains cell ``cell`` until it has taken ``steps`` steps in all and returns
            how many it took now.
        score: ``score(cells)`` returns the held-out loss of each listed cell (the same on every process of a
            distributed run; inf for a diverged cell).

    Returns:
        Every trial and the winner: the lowest score of the last rung.

    Raises:
        AllDiverged: If every cell of a rung diverged (a ``RuntimeError``).
    """
    trials = [Trial(lr, ratio) for lr, ratio in cells]
    alive = list(range(len(cells)))
    for i, rung in enumerate(rungs):
        if i:
            alive = [alive[j] for j in keep_best([trials[c].score for c in alive], rung.cells)]
        for c in alive:
            trials[c].steps += train(c, rung.steps)
        for c, value in zip(alive, score(alive), strict=True):
            trials[c].scores.append(value if math.isfinite(value) else math.inf)
    best = keep_best([trials[c].score for c in alive], 1) if rungs else [0]
    if not best:
        cells_text = ", ".join(f"(η_A={trials[c].lr:g}, λ={trials[c].ratio:g})" for c in alive)
        raise AllDiverged(
            f"Every cell of the search's last rung diverged ({cells_text}): the searched rates are too large for "
            "this model. Search smaller ones (`model.search_lrs`, `model.search_ratios`) or set `model.lr` and "
            "`model.ratio`."
        )
    return trials, trials[alive[best[0]]]


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class SearchOutcome:
    """What a search decided and what it cost: the record stored with the run, logged and exported.

    Attributes:
        requested: What the user set, e.g. ``{"lr": "auto", "ratio": 16.0}``.
        lr: The chosen η_A (the best cell's, or the next value below where it was the largest searched and
            ``search_edge`` is ``step_down``, times ``lr_factor`` when ``lr`` was ``"auto"``; the one nearest the
            default when the search fell back).
        ratio: The chosen λ (the best cell's, or the next value below where it was the largest searched and
            ``search_edge`` is ``step_down``; the one nearest the default when the search fell back).
        best: The winning trial.
        trials: Every trial, in cell order.
        rungs: The plan.
        budget_steps: Extra optimizer steps the budget allowed.
        total_steps: Optimizer steps of the run itself.
        lr_factor: The short-horizon correction applied to η_A.
        scored_on: Where the scoring batches came from.
        score_batches: Held-out batches per score.
        constant_score: The scoring rows' loss under the best constant prediction (their label balance or mean;
            None where there is none): a best score not below it means the trials learned only the prior.
        fell_back: Whether the choice is the cell nearest the package defaults because the trials learned only
            the prior (``SearchSettings.fallback``); that cell may also be the best one, passing nothing over.
        stepped_down: Whether the choice is one value below the best cell's on a setting where that was the
            largest searched (``SearchSettings.edge``, :func:`~lit_loraplus.core.search.step_down`).
        seed: The seed of the shuffle of the training rows that the trials (and scoring) drew from.
    """

    requested: dict[str, Any]
    lr: float
    ratio: float
    best: Trial
    trials: list[Trial]
    rungs: list[Rung]
    budget_steps: int
    total_steps: int
    lr_factor: float
    scored_on: str
    score_batches: int
    constant_score: float | None = None
    fell_back: bool = False
    stepped_down: bool = False
    seed: int = 0

    @property
    def learned_only_the_prior(self) -> bool:
        """Whether the best cell's score is no better than predicting a constant (the trials were too short)."""
        return self.constant_score is not None and not self.best.score < self.constant_score

    @property
    def at_edge(self) -> dict[str, str]:
        """The searched settings whose choice is an end of the values searched (:func:`search_ends`), e.g.
        ``{"lr": "largest"}``; none for a search that fell back (its choice is the defaults' cell, not the trials')."""
        if self.fell_back:
            return {}
        return search_ends([(t.lr, t.ratio) for t in self.trials], (self.best.lr, self.best.ratio))

    @property
    def extra_steps(self) -> int:
        """Optimizer steps every trial took together."""
        return sum(t.steps for t in self.trials)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (and ``torch.load(weights_only=True)``-ready): numbers, strings, lists, dicts; inf/NaN as None."""
        return {
            "requested": dict(self.requested),
            "chosen": {"lr": self.lr, "ratio": self.ratio},
            "best_cell": {"lr": self.best.lr, "ratio": self.best.ratio, "score": _number(self.best.score)},
            "lr_factor": self.lr_factor,
            "extra_steps": self.extra_steps,
            "budget_steps": self.budget_steps,
            "total_steps": self.total_steps,
            "rungs": [asdict(r) for r in self.rungs],
            "scored_on": self.scored_on,
            "score_batches": self.score_batches,
            "score": "mean held-out loss (eval mode) after each rung",
            "constant_score": _number(self.constant_score) if self.constant_score is not None else None,
            "fell_back": self.fell_back,
            "at_edge": self.at_edge,
            "stepped_down": self.stepped_down,
            "search_seed": self.seed,
            "trials": [
                {"lr": t.lr, "ratio": t.ratio, "steps": t.steps, "scores": [_number(s) for s in t.scores]}
                for t in self.trials
            ],
        }
