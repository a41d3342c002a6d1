"""Successive halving over an arm's (η_A, λ) cells, extended along η_A until the arm's optimum is interior.

Pure functions of the finished run records, so the runner and the report derive the same search state
and a resumed benchmark continues exactly where it stopped:

1. every cell of the arm's grid trains to rung 0 (``Recipe.rung_step``) under the full-length schedule;
2. the best ``promote_fraction`` of the cells (at least ``min_promoted``) by selection-split loss at rung 0
   continue from their rung-0 checkpoint to N;
3. the arm's choice is the cell with the lowest selection-split loss at N; if its η_A is the smallest or
   largest of the arm's grid, the grid grows by the next ladder value on that side (all the arm's λ) and
   the search repeats, at most ``max_extensions`` times (then the result says ``capped``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from benchmarks.evidence.tasks import ladder_lr, ladder_step

Cell = tuple[float, float]  # (η_A, λ)


def arm_of(ratio: float) -> str:
    """``lora`` for λ = 1, ``loraplus`` for λ > 1."""
    return "lora" if ratio == 1 else "loraplus"


def promote(rung_loss: dict[Cell, float], fraction: float, minimum: int) -> list[Cell]:
    """The cells that continue past rung 0: the ``max(minimum, ⌈fraction·n⌉)`` lowest losses (at most n).

    Args:
        rung_loss: Selection-split loss at rung 0 per cell; NaN (diverged) ranks last.
        fraction: Share of the cells promoted.
        minimum: Fewest cells promoted.

    Returns:
        The promoted cells, best first (ties broken by (η_A, λ), so the order is reproducible).
    """
    k = min(len(rung_loss), max(minimum, math.ceil(fraction * len(rung_loss))))
    ranked = sorted(rung_loss, key=lambda c: (math.isnan(rung_loss[c]), rung_loss[c], c))
    return ranked[:k]


def best(loss: dict[Cell, float]) -> Cell | None:
    """The cell of lowest loss (None if there is none that did not diverge)."""
    finite = {c: v for c, v in loss.items() if not math.isnan(v)}
    return min(finite, key=lambda c: (finite[c], c)) if finite else None


def extension(lrs: Sequence[float], chosen_lr: float) -> float | None:
    """The η_A that would take ``chosen_lr`` off the grid's edge (None if it is interior).

    Args:
        lrs: The arm's η_A grid (any order).
        chosen_lr: η_A of the arm's best cell.

    Returns:
        The ladder value one step below the smallest (if ``chosen_lr`` is the smallest) or above the
        largest (if it is the largest); with a one-value grid, the value above.
    """
    low, high = min(lrs), max(lrs)
    if chosen_lr == high:
        return ladder_lr(ladder_step(high) + 1)
    if chosen_lr == low:
        return ladder_lr(ladder_step(low) - 1)
    return None


@dataclass
class ArmSearch:
    """Where one arm's search stands, derived from its records.

    Attributes:
        arm: ``lora`` or ``loraplus``.
        lrs: η_A grid searched so far (initial grid plus extensions), ascending.
        ratios: The arm's λ values.
        rung_loss: Selection loss at rung 0 per cell that has it.
        full_loss: Selection loss at N per cell run to the end.
        promoted: Cells promoted from rung 0 on the current grid.
        todo_rung: Cells still to run to rung 0.
        todo_full: Promoted cells still to run to N.
        choice: The arm's best cell at N once the search is complete.
        extensions: η_A values added beyond the initial grid, in the order added.
        capped: True when the choice still sits on the grid's edge but no extension is left.
    """

    arm: str
    lrs: list[float]
    ratios: tuple[float, ...]
    rung_loss: dict[Cell, float] = field(default_factory=dict)
    full_loss: dict[Cell, float] = field(default_factory=dict)
    promoted: list[Cell] = field(default_factory=list)
    todo_rung: list[Cell] = field(default_factory=list)
    todo_full: list[Cell] = field(default_factory=list)
    choice: Cell | None = None
    extensions: list[float] = field(default_factory=list)
    capped: bool = False

    @property
    def complete(self) -> bool:
        """Whether the search has chosen its cell (nothing left to run)."""
        return self.choice is not None and not self.todo_rung and not self.todo_full

    @property
    def cells(self) -> list[Cell]:
        """Every cell of the current grid."""
        return [(lr, ratio) for lr in self.lrs for ratio in self.ratios]


def search_arm(
    arm: str,
    ratios: Sequence[float],
    initial_lrs: Iterable[float],
    rung_loss: dict[Cell, float],
    full_loss: dict[Cell, float],
    fraction: float,
    minimum: int,
    max_extensions: int,
) -> ArmSearch:
    """Replay an arm's successive-halving search over the losses recorded so far.

    Args:
        arm: ``lora`` or ``loraplus``.
        ratios: The arm's λ values.
        initial_lrs: η_A grid to start from.
        rung_loss: Selection loss at rung 0 of every cell that has a rung record (of this arm or not).
        full_loss: Selection loss at N of every cell that has a full record.
        fraction: ``Recipe.promote_fraction``.
        minimum: ``Recipe.min_promoted``.
        max_extensions: Most η_A values added to the initial grid.

    Returns:
        The state: either work to do (``todo_rung`` or ``todo_full``), or the ``choice``.
    """
    state = ArmSearch(arm, sorted(initial_lrs), tuple(ratios))
    while True:
        cells = state.cells
        state.rung_loss = {c: rung_loss[c] for c in cells if c in rung_loss}
        state.todo_rung = [c for c in cells if c not in rung_loss]
        if state.todo_rung:
            return state
        state.promoted = promote(state.rung_loss, fraction, minimum)
        # Cells promoted before an extension stay finished runs and stay candidates.
        state.full_loss = {c: full_loss[c] for c in cells if c in full_loss}
        state.todo_full = [c for c in state.promoted if c not in full_loss]
        if state.todo_full:
            return state
        chosen = best(state.full_loss)
        more = extension(state.lrs, chosen[0]) if chosen is not None else None
        if more is None or len(state.extensions) == max_extensions:
            state.choice, state.capped = chosen, more is not None
            return state
        state.extensions.append(more)
        state.lrs = sorted([*state.lrs, more])


def horizon_bias(state: ArmSearch) -> dict[str, float | list[float]] | None:
    """The short-horizon bias of an arm's grid: how the rung-0 ranking of its finalists differs from their ranking
    at N.

    Among the cells run to N (each has a rung-0 loss too), the best at rung 0 and the best at N; the factors are
    rung's best / N's best for η_A and for B's rate λ·η_A (above 1: the shorter horizon favoured a larger rate).

    Args:
        state: The arm's search state.

    Returns:
        ``rung_best``, ``full_best`` (cells as ``[η_A, λ]``), ``lr_factor``, ``b_factor`` and ``finalists``, or None
        with fewer than two finalists.
    """
    finalists = {c: state.rung_loss[c] for c in state.full_loss if c in state.rung_loss}
    rung, full = best(finalists), best({c: state.full_loss[c] for c in finalists})
    if len(finalists) < 2 or rung is None or full is None:
        return None
    return {"rung_best": list(rung), "full_best": list(full), "lr_factor": rung[0] / full[0],
            "b_factor": rung[0] * rung[1] / (full[0] * full[1]), "finalists": len(finalists)}  # fmt: skip
