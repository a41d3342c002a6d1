"""Learning-rate schedule × ratio schedule, one multiplier per optimizer group.

For group g at optimizer step t::

    lr_g(t) = base_lr_g · s(t) · (λ(t) / λ   if g is a B group else 1)

``s(t)`` is the base schedule (constant / linear decay / cosine, each with linear warm-up) and
``λ(t)`` the ratio schedule (constant, or a linear / cosine ramp from λ₀ to λ). Because the B
group's base learning rate already is λ·η, ``lr_B(t) / lr_A(t) = λ(t)`` at every step, through
warm-up, decay and resume. Everything is a plain :class:`torch.optim.lr_scheduler.LambdaLR`
whose multipliers hold only numbers, so ``state_dict()`` restores the same curve.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from lit_loraplus.core.checks import in_range, int_at_least, is_int_at_least, one_of, positive, raise_problems

LRScheduleName = Literal["constant", "linear", "cosine"]
RatioScheduleName = Literal["constant", "linear", "cosine"]
_NAMES = ("constant", "linear", "cosine")


def lr_factor(step: int, name: str, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """The base schedule s(t): linear warm-up from 0, then constant / linear / cosine decay.

    Warm-up follows the Hugging Face convention (s(0) = 0 when there is warm-up). Decay runs from
    1 at the end of warm-up to ``min_lr_ratio`` at ``total_steps`` and stays there.

    Args:
        step: Optimizer steps taken so far (t ≥ 0).
        name: ``constant``, ``linear`` or ``cosine``.
        total_steps: Length of the run in optimizer steps.
        warmup_steps: Steps of linear warm-up.
        min_lr_ratio: Final learning rate as a fraction of the peak.

    Returns:
        The multiplier s(t) in [0, 1].
    """
    if step < warmup_steps:
        return step / warmup_steps
    if name == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    decay = 1.0 - progress if name == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_lr_ratio + (1.0 - min_lr_ratio) * decay


def ratio_at(step: int, name: str, ratio: float, initial_ratio: float, warmup_steps: int) -> float:
    """The ratio schedule λ(t): constant, or a linear / cosine ramp from λ₀ to λ over K steps.

    Args:
        step: Optimizer steps taken so far (t ≥ 0).
        name: ``constant``, ``linear`` or ``cosine``.
        ratio: The target ratio λ = η_B / η_A.
        initial_ratio: λ₀, the ratio at step 0 of a ramp.
        warmup_steps: K, the length of the ramp.

    Returns:
        λ(t).
    """
    if name == "constant" or step >= warmup_steps:
        return ratio
    frac = step / warmup_steps
    if name == "cosine":
        frac = 0.5 * (1.0 - math.cos(math.pi * frac))
    return initial_ratio + (ratio - initial_ratio) * frac


@dataclass(frozen=True)
class LRSchedule:
    """Base learning-rate schedule s(t), applied to every group.

    Args:
        name: ``constant``, ``linear`` (decay to ``min_lr_ratio``) or ``cosine``.
        total_steps: Length of the run in optimizer steps.
        warmup_steps: Steps of linear warm-up from 0.
        min_lr_ratio: Final learning rate as a fraction of each group's peak (a fraction, never an
            absolute floor, so the ratio between groups survives to the end).

    Raises:
        ValueError: For an unknown name, ``total_steps < 1``, a negative or too long warm-up, or
            ``min_lr_ratio`` outside [0, 1].
    """

    name: LRScheduleName = "linear"
    total_steps: int = 1
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        raise_problems(
            self.problems_of(self.name, self.total_steps, self.warmup_steps, self.min_lr_ratio),
            "learning-rate schedule",
        )

    @staticmethod
    def problems_of(name: str, total_steps: int | None, warmup_steps: int, min_lr_ratio: float) -> list[str]:
        """Every problem of these fields (empty when valid); ``total_steps=None`` skips the checks against it.

        Args:
            name: The schedule's name.
            total_steps: The run's length, or None while it is not known (before the trainer exists).
            warmup_steps: Warm-up length.
            min_lr_ratio: Final fraction of the peak.
        """
        problems = one_of("lr_schedule", name, _NAMES)
        if total_steps is not None:
            problems += int_at_least("total_steps", total_steps, 1, "the run's optimizer steps")
        problems += int_at_least("warmup_steps", warmup_steps, 0)
        if not problems and total_steps is not None and warmup_steps > total_steps:
            problems.append(f"`warmup_steps={warmup_steps}` is longer than the run (total_steps={total_steps}).")
        return problems + in_range("min_lr_ratio", min_lr_ratio, 0.0, 1.0, "a fraction of the peak learning rate")

    def __call__(self, step: int) -> float:
        """s(step); see :func:`lr_factor`."""
        return lr_factor(step, self.name, self.total_steps, self.warmup_steps, self.min_lr_ratio)


@dataclass(frozen=True)
class RatioSchedule:
    """Ratio schedule λ(t) = η_B(t) / η_A(t).

    Args:
        name: ``constant`` (λ throughout), ``linear`` or ``cosine`` (ramp from ``initial_ratio`` to
            ``ratio`` over ``warmup_steps``, then λ).
        ratio: The target λ (the optimizer groups' B learning rate is already λ·η).
        initial_ratio: λ₀ at step 0 of a ramp (1.0: start as plain LoRA).
        warmup_steps: Length of the ramp; must be 0 for ``constant`` and positive otherwise.

    Raises:
        ValueError: For an unknown name, a non-positive ratio, or a ramp length that does not fit
            the name.
    """

    name: RatioScheduleName = "constant"
    ratio: float = 16.0
    initial_ratio: float = 1.0
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        problems = self.problems_of(self.name, self.initial_ratio, self.warmup_steps)
        raise_problems(problems + positive("ratio", self.ratio), "ratio schedule")

    @staticmethod
    def problems_of(name: str, initial_ratio: float, warmup_steps: int) -> list[str]:
        """Every problem of these fields but the ratio itself (checked with the group settings).

        Args:
            name: The schedule's name (``ratio_schedule``).
            initial_ratio: λ₀.
            warmup_steps: Ramp length (``ratio_warmup_steps``).
        """
        problems = one_of("ratio_schedule", name, _NAMES) + positive("initial_ratio", initial_ratio)
        if name == "constant" and warmup_steps != 0:
            problems.append(
                f"`ratio_warmup_steps={warmup_steps!r}` has no effect with ratio_schedule='constant': "
                "set ratio_schedule='linear' or 'cosine', or drop ratio_warmup_steps."
            )
        if name in ("linear", "cosine") and not is_int_at_least(warmup_steps, 1):
            problems.append(f"ratio_schedule={name!r} needs `ratio_warmup_steps` >= 1, got {warmup_steps!r}.")
        return problems

    def __call__(self, step: int) -> float:
        """λ(step); see :func:`ratio_at`."""
        return ratio_at(step, self.name, self.ratio, self.initial_ratio, self.warmup_steps)


class GroupMultiplier:
    """One group's LambdaLR multiplier: s(t), times λ(t)/λ for a B group.

    It holds only numbers and strings (no functions, no objects), so LambdaLR's
    ``state_dict()`` saves it, ``load_state_dict()`` restores it, and checkpoints load under
    ``torch.load(weights_only=True)``.

    Args:
        lr_schedule: The base schedule.
        ratio_schedule: The ratio schedule for a B group; ``None`` for every other group.
    """

    def __init__(self, lr_schedule: LRSchedule, ratio_schedule: RatioSchedule | None = None) -> None:
        self.lr_schedule = asdict(lr_schedule)
        self.ratio_schedule = asdict(ratio_schedule) if ratio_schedule is not None else None

    def __call__(self, step: int) -> float:
        """The multiplier of the group's base learning rate at ``step``."""
        factor = lr_factor(step, **self.lr_schedule)
        if self.ratio_schedule is None:
            return factor
        return factor * ratio_at(step, **self.ratio_schedule) / self.ratio_schedule["ratio"]

    def __repr__(self) -> str:
        return f"GroupMultiplier(lr_schedule={self.lr_schedule}, ratio_schedule={self.ratio_schedule})"


def is_b_group(group: dict) -> bool:
    """Whether an optimizer group is one of LoRA+'s B groups (learning rate λ·η)."""
    return group.get("role") == "lora_B"


def check_schedules_fit(lr_schedule: LRSchedule, ratio_schedule: RatioSchedule | None) -> None:
    """Refuse a ratio ramp longer than the run.

    Args:
        lr_schedule: The base schedule (its ``total_steps`` is the run's length).
        ratio_schedule: The ratio schedule, or ``None``.

    Raises:
        ValueError: If λ would never reach its target.
    """
    if ratio_schedule is not None and ratio_schedule.warmup_steps > lr_schedule.total_steps:
        raise ValueError(
            f"ratio_warmup_steps={ratio_schedule.warmup_steps} is longer than the run "
            f"(total_steps={lr_schedule.total_steps}): λ would never reach ratio={ratio_schedule.ratio}. "
            "Shorten ratio_warmup_steps or train longer."
        )


def loraplus_scheduler(
    optimizer: Optimizer, lr_schedule: LRSchedule, ratio_schedule: RatioSchedule | None = None
) -> LambdaLR:
    """Build the LambdaLR that applies s(t) to every group and λ(t)/λ on top to B groups.

    Args:
        optimizer: An optimizer over :func:`~lit_loraplus.optim.loraplus_param_groups` (groups
            carry ``"role"``; B groups have ``role == "lora_B"``).
        lr_schedule: The base schedule.
        ratio_schedule: The ratio schedule; ``None`` means constant λ.

    Returns:
        A ``LambdaLR`` with one :class:`GroupMultiplier` per group; step it once per optimizer step.

    Raises:
        ValueError: If a ratio ramp is longer than the run.
    """
    check_schedules_fit(lr_schedule, ratio_schedule)
    multipliers = [
        GroupMultiplier(lr_schedule, ratio_schedule if is_b_group(g) else None) for g in optimizer.param_groups
    ]
    return LambdaLR(optimizer, lr_lambda=multipliers)
