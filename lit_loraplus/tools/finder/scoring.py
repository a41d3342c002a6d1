"""The ratio finder's settings and scoring: the grid checks, the loss smoothing and a trial's score."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from lit_loraplus.core.checks import distinct_positives, in_range, int_at_least, is_positive, raise_problems

DEFAULT_RATIOS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # 2^0..2^5: the paper's λ = 2^4 and the standard init's 2^1-2^3
MIN_STEPS = 4  # the score averages the last quarter of the batches: at least one smoothed value


def validate_finder_settings(
    ratios: Sequence[float],
    lrs: Sequence[float] | None,
    steps: int,
    smoothing: float,
    divergence_threshold: float,
) -> None:
    """Check the ratio finder's grid and settings; collect every problem and raise once, before any training.

    Args:
        ratios: The λ values to try.
        lrs: The η_A values to try (None: the module's own ``lr``).
        steps: Optimizer steps per trial.
        smoothing: β of the loss's exponential moving average.
        divergence_threshold: A trial diverges when its smoothed loss exceeds this multiple of its first loss.

    Raises:
        ValueError: Naming each bad setting, its value and the fix.
    """
    problems = distinct_positives("ratios", ratios, "[1, 2, 4, 8, 16, 32]", "λ = η_B/η_A; 1 is plain LoRA")
    problems += distinct_positives("lrs", lrs, "[1e-4, 2e-4, 4e-4]", "η_A, the learning rate of A")
    problems += int_at_least("steps", steps, MIN_STEPS, "too short to compare trials; 50-100 is typical")
    problems += in_range("smoothing", smoothing, 0.0, 1.0, "0: no smoothing; 0.9 averages ~10 batches", high_open=True)
    if not (is_positive(divergence_threshold) and divergence_threshold > 1):
        problems.append(f"`divergence_threshold={divergence_threshold!r}` must be a number > 1 (default 4).")
    raise_problems(problems, "ratio-finder settings")


def smooth_losses(losses: Sequence[float], beta: float) -> list[float]:
    """Exponential moving average with bias correction, as Lightning's ``lr_find`` smooths its loss.

    m_t = β·m_{t−1} + (1 − β)·ℓ_t (m_{−1} = 0) and s_t = m_t / (1 − β^{t+1}), so s_0 = ℓ_0.

    Args:
        losses: Raw losses, one per batch.
        beta: β in [0, 1); 0 returns the losses unchanged.

    Returns:
        The smoothed losses (same length).
    """
    average, smoothed = 0.0, []
    for t, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        smoothed.append(average / (1 - beta ** (t + 1)))
    return smoothed


def trial_score(smoothed: Sequence[float]) -> float:
    """The score of a trial: the mean smoothed loss over its last quarter of batches (at least one).

    Averaging a quarter, not taking the last value, keeps one lucky or unlucky batch from deciding.

    Args:
        smoothed: Smoothed losses of the trial.

    Returns:
        The score (lower is better); NaN for an empty trial.
    """
    if not smoothed:
        return math.nan
    return statistics.fmean(smoothed[-max(1, len(smoothed) // 4) :])
