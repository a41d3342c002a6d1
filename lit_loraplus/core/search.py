"""``lr="auto"`` / ``ratio="auto"``: what is searched, within which budget, in which rungs.

The search tries cells (η_A, λ) by successive halving: every cell trains ``s`` optimizer steps from
the run's initial state at constant rates and is scored on held-out batches, the better half
continues to ``2s`` steps, and so on until two cells are left; the best of those is the choice.
With cells trained on from where they stopped, a plan over n cells costs

    s · Σ_i n_i · (2^i − 2^(i−1))   (n_0 = n, n_i = ⌈n_{i−1}/2⌉, the 2^(−1) term read as 0)

extra optimizer steps, linear in ``s``: the budget decides ``s``, and a budget whose ``s`` falls
below :attr:`SearchSettings.min_steps` is refused before any training. Pure Python: the trials
themselves are run by the training layer (:mod:`lit_loraplus.training.search`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from lit_loraplus.core.checks import (
    distinct_positives,
    int_at_least,
    is_int_at_least,
    is_positive,
    one_of,
    positive,
    raise_problems,
)
from lit_loraplus.core.settings import DEFAULT_LR, DEFAULT_RATIO  # the η_A ladder is centred near DEFAULT_LR

AUTO = "auto"
Auto = Literal["auto"]
ScoreOn = Literal["auto", "validation", "train"]
Edge = Literal["step_down", "keep"]
SEARCH_RATIOS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # 2^0..2^5: plain LoRA to twice the paper's 2^4
LADDER_HALF_WIDTH = 2  # ladder rungs either side of the centre: 2.15e-4 to 4.64e-3 around 1e-3, the evidence grid's


def ladder_lr(k: int) -> float:
    """η_A of step ``k`` of the 10^(k/3) ladder, to three significant digits (k = −11 is 2.15e-4).

    The convergence benchmarks use the same ladder, so every η_A the search picks is one of their grid's.
    """
    return float(f"{10 ** (k / 3):.3g}")


def lr_ladder(center: float = DEFAULT_LR, half_width: int = LADDER_HALF_WIDTH) -> tuple[float, ...]:
    """The ladder rungs from ``half_width`` below to ``half_width`` above the rung nearest ``center``.

    Example:
        >>> lr_ladder(2e-4, 1)
        (0.0001, 0.000215, 0.000464)
    """
    k = round(3 * math.log10(center))
    return tuple(ladder_lr(i) for i in range(k - half_width, k + half_width + 1))


@dataclass(frozen=True)
class Rung:
    """One round of successive halving: ``cells`` cells, each trained until it has taken ``steps`` steps."""

    cells: int
    steps: int


def halving_rungs(cells: int, first_steps: int, halving: int = 2) -> list[Rung]:
    """The rungs for ``cells`` cells: the first trains each for ``first_steps``, every next one keeps the best
    1/``halving`` (rounded up) for ``halving`` times as long, until ``halving`` cells or fewer are left."""
    rungs = [Rung(cells, first_steps)]
    while rungs[-1].cells > halving:
        rungs.append(Rung(math.ceil(rungs[-1].cells / halving), rungs[-1].steps * halving))
    return rungs


def plan_cost(rungs: Sequence[Rung]) -> int:
    """Extra optimizer steps of a plan whose cells continue from where they stopped."""
    return sum(r.cells * (r.steps - (rungs[i - 1].steps if i else 0)) for i, r in enumerate(rungs))


@dataclass(frozen=True)
class SearchSettings:
    """How ``lr="auto"`` / ``ratio="auto"`` search: the cells, the budget and the halving.

    Raises:
        ValueError: At construction, listing every bad field.

    Attributes:
        budget: Extra optimizer steps the search may take: a float is a fraction of the run's steps
            (0.1 = 10 %), an int a number of steps.
        lrs: η_A values tried when ``lr="auto"`` (None: :func:`lr_ladder` around the default η_A, 2.15e-4 to
            4.64e-3).
        ratios: λ values tried when ``ratio="auto"`` (None: 1, 2, 4, 8, 16, 32).
        lr_factor: The short-horizon correction: the chosen η_A is multiplied by it. Short trials favour
            larger learning rates than the best for a full run; 1.0 (the default) corrects nothing until
            it is calibrated against full-length runs.
        halving: Each rung keeps the best 1/``halving`` of the cells for ``halving`` times as long.
        min_steps: The shortest first rung the search accepts: below it, cells are compared after too few
            steps to tell them apart, and the budget is refused.
        score_batches: Held-out batches (forward passes only) that score every cell at the end of a rung.
        score_on: Where the scoring batches come from: ``"validation"`` (validation rows drawn with ``seed``,
            whatever their order; they must carry labels), ``"train"`` (training rows held out from every trial;
            keeps the validation data unseen by the choice, e.g. when it is the split you report) or ``"auto"``
            (validation rows where the validation batches carry labels, else held-out training rows).
        fallback: When the best cell scores no better than the best constant prediction on the scoring rows
            (their label balance or mean: the trials ended before the model learned anything beyond the prior),
            train with the cell nearest the package defaults (η_A 1e-3, λ 4; the defaults themselves with the
            default lists, :func:`default_cell`) instead of that cell, whose win is then close to chance. False
            keeps the best cell.
        edge: What a best cell at the largest searched η_A or λ (:func:`search_ends`; 3 values or more) trains
            with: ``"step_down"`` (the default) takes the next value below on that setting, since such a win
            beat nothing larger and short trials favour larger rates than the whole run's best (below the
            smaller end, and after a fallback, nothing changes); ``"keep"`` trains with the best cell.
            Either way the run warns and records the end.
        seed: The seed of the search's shuffle of the training rows, which decides the rows its trials train on
            and, without validation rows, the rows that score them. None (the default): the run's seed, as
            ``seed_everything`` set it (0 where no seed was set), so runs that differ in their seed also
            differ in the rows their search sees, as they differ in initialisation and data order. A value
            fixes the rows whatever the run's seed (to compare choices across seeds on the same rows, or to
            check how much the choice depends on them).
    """

    budget: int | float = 0.1
    lrs: Sequence[float] | None = None
    ratios: Sequence[float] | None = None
    lr_factor: float = 1.0
    halving: int = 2
    min_steps: int = 2
    score_batches: int = 4
    score_on: ScoreOn = "auto"
    fallback: bool = True
    edge: Edge = "step_down"
    seed: int | None = None

    def __post_init__(self) -> None:
        raise_problems(self.problems_in(asdict(self), prefix=""), "search settings")

    @staticmethod
    def problems_in(values: Mapping[str, Any], prefix: str = "search_") -> list[str]:
        """Every problem of these field values (empty when valid), named ``<prefix><field>`` as the user sets them.

        Args:
            values: Field values by name; missing fields take their defaults.
            prefix: How the settings are named where the user gives them (``search_budget``, ...).
        """
        get, budget = values.get, values.get("budget", 0.1)
        problems = []
        if not (is_int_at_least(budget, 1) or (isinstance(budget, float) and is_positive(budget))):
            problems.append(
                f"`{prefix}budget={budget!r}` must be a fraction of the run's optimizer steps (a float > 0, "
                "e.g. 0.1 = 10 %) or a number of steps (an int >= 1)."
            )
        problems += distinct_positives(f"{prefix}lrs", get("lrs"), "[1e-4, 2.15e-4, 4.64e-4]", "η_A values")
        problems += distinct_positives(f"{prefix}ratios", get("ratios"), "[2, 4, 8, 16]", "λ values; 1 is plain LoRA")
        problems += positive(f"{prefix}lr_factor", get("lr_factor", 1.0), "1 corrects nothing")
        problems += int_at_least(f"{prefix}halving", get("halving", 2), 2)
        problems += int_at_least(f"{prefix}min_steps", get("min_steps", 2), 1)
        problems += int_at_least(f"{prefix}score_batches", get("score_batches", 4), 1)
        problems += one_of(f"{prefix}score_on", get("score_on", "auto"), get_args(ScoreOn))
        problems += one_of(f"{prefix}edge", get("edge", "step_down"), get_args(Edge), "keep trains with the best cell")
        problems += int_at_least(f"{prefix}seed", get("seed"), 0, "null follows the run's seed", optional=True)
        if not isinstance(get("fallback", True), bool):
            problems += [f"`{prefix}fallback={get('fallback')!r}` must be true or false (true: train with the cell "
                         "nearest the defaults when no cell beats a constant prediction)."]  # fmt: skip
        return problems

    def grid(self, lr: float | str, ratio: float | str) -> list[tuple[float, float]]:
        """The cells (η_A, λ): the searched values of each ``"auto"`` setting, the fixed value of the other.

        Ordered by η_A, then λ (the order ties are broken in).
        """
        lrs = (self.lrs or lr_ladder()) if lr == AUTO else (lr,)
        ratios = (self.ratios or SEARCH_RATIOS) if ratio == AUTO else (ratio,)
        return [(float(a), float(b)) for a in sorted(lrs) for b in sorted(ratios)]

    def budget_steps(self, total_steps: int) -> int:
        """The budget in optimizer steps for a run of ``total_steps`` (a fraction rounds down)."""
        return self.budget if isinstance(self.budget, int) else math.floor(self.budget * total_steps)

    def plan(self, cells: int, total_steps: int) -> list[Rung]:
        """The rungs for ``cells`` cells with the longest first rung the budget pays for (none for one cell).

        Raises:
            ValueError: If the budget pays for a first rung shorter than ``min_steps``: naming the budget,
                what the search needs, and the ways to fix it.
        """
        if cells == 1:
            return []
        budget = self.budget_steps(total_steps)
        unit = plan_cost(halving_rungs(cells, 1, self.halving))  # the plan's cost per step of its first rung
        if budget // unit >= self.min_steps:
            return halving_rungs(cells, budget // unit, self.halving)
        need = unit * self.min_steps
        given = f"{self.budget:g} × the run's {total_steps}" if isinstance(self.budget, float) else "set as steps"
        fraction = math.ceil(100 * need / total_steps) / 100
        shorter = (
            f" The budget does pay for a first rung of {budget // unit} step{'s' * (budget // unit > 1)}: "
            f"`model.search_min_steps={budget // unit}` accepts it (cells compared after fewer steps)."
            if budget // unit >= 1
            else ""
        )
        raise ValueError(
            f"`search_budget={self.budget!r}` allows {budget} extra optimizer steps ({given}), but searching "
            f"{cells} cells (η_A, λ) by successive halving needs at least {need}: {self.min_steps} steps for every "
            f"cell, then {self.halving}× as long for the best 1/{self.halving}, until {self.halving} are left. Set "
            f"`model.search_budget={need}` (steps) or {fraction!r} (a fraction of the run), search fewer values "
            f"(`model.search_lrs`, `model.search_ratios`), or fix `model.lr` or `model.ratio`.{shorter}"
        )


def default_cell(cells: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The cell (η_A, λ) nearest the package defaults, by ratio on each axis (the smaller value on a tie).

    A search falls back to it when no cell beats a constant prediction. A setting that was not searched has one
    value in ``cells``, so it keeps it; a searched one gets its default wherever the searched values include it.

    Example:
        >>> default_cell([(1e-4, 2.0), (1e-3, 2.0), (1e-4, 8.0), (1e-3, 8.0)])
        (0.001, 2.0)
    """

    def nearest(values: set[float], target: float) -> float:
        return min(values, key=lambda v: (abs(math.log(v / target)), v))

    return nearest({c[0] for c in cells}, DEFAULT_LR), nearest({c[1] for c in cells}, DEFAULT_RATIO)


def search_ends(cells: Sequence[tuple[float, float]], best: tuple[float, float]) -> dict[str, str]:
    """The settings whose best value is an end of the values the cells (η_A, λ) tried: ``{"lr": "largest"}``, ...

    A value at an end beat nothing beyond it, so the best may lie outside the values tried, and a largest η_A or λ
    is also what trials shorter than the run tend to favour. A setting counts only where it took 3 values or more
    (of 2, every value is an end; a fixed setting has 1), and λ = 1 or below is no end (below it is not LoRA+).

    Example:
        >>> search_ends([(1e-4, 4.0), (1e-3, 4.0), (1e-2, 4.0)], (1e-2, 4.0))
        {'lr': 'largest'}
    """
    ends = {}
    for i, key in enumerate(("lr", "ratio")):
        values = sorted({cell[i] for cell in cells})
        if len(values) < 3:
            continue
        if best[i] == values[-1]:
            ends[key] = "largest"
        elif best[i] == values[0] and not (key == "ratio" and best[i] <= 1):
            ends[key] = "smallest"
    return ends


def step_down(cells: Sequence[tuple[float, float]], best: tuple[float, float]) -> tuple[float, float]:
    """``best`` with every setting at the largest of the values the cells tried moved to the next value below.

    The ``search_edge: step_down`` rule (:func:`search_ends` decides what is an end): a largest value beat
    nothing larger, and the trials that chose it were shorter than the run, which favours larger rates. A
    setting at its smallest value, or not at an end, keeps its value.

    Example:
        >>> step_down([(1e-4, 4.0), (1e-3, 4.0), (1e-2, 4.0)], (1e-2, 4.0))
        (0.001, 4.0)
    """
    ends = search_ends(cells, best)
    moved = list(best)
    for i, key in enumerate(("lr", "ratio")):
        if ends.get(key) == "largest":
            moved[i] = sorted({cell[i] for cell in cells})[-2]
    return moved[0], moved[1]


def keep_best(scores: Sequence[float], keep: int) -> list[int]:
    """Indices of the ``keep`` lowest finite scores, in index order (ties go to the lower index).

    A non-finite score (a trial whose loss diverged) is never kept, so fewer may come back.

    Example:
        >>> keep_best([0.5, float("nan"), 0.4, 0.5], 2)
        [0, 2]
    """
    finite = sorted((s, i) for i, s in enumerate(scores) if math.isfinite(s))
    return sorted(i for _, i in finite[:keep])
