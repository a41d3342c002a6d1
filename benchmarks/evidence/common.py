"""The evidence benchmark's records and statistics: reading records, t-intervals, paired differences, steps to target.

Nothing here knows about LoRA+ or GLUE. Records are written with the harness's ``write_json_atomic``
(a record exists only once its run finished, so a rerun resumes); :func:`t_interval`,
:func:`median_interval`, :func:`paired_difference` and :func:`steps_to_reach` are the statistics a report
states.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scipy import stats

Record = dict[str, Any]


def read_records(folder: Path) -> list[Record]:
    """Every ``*.json`` record under ``folder`` (recursively), in path order; empty if the folder is absent."""
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))] if folder.is_dir() else []


def as_float(value: float | None) -> float:
    """A recorded value as a float, ``null`` (diverged or missing) as NaN."""
    return math.nan if value is None else float(value)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean and two-sided Student-t confidence interval of independent observations.

    Args:
        values: The observations (e.g. one final metric per seed); NaN (a diverged run) makes the result NaN.
        confidence: Coverage of the interval.

    Returns:
        ``{"n", "mean", "std", "half_width", "low", "high", "values"}``; with fewer than two values the
        spread and the interval are NaN (written as ``null``).

    Example:
        >>> round(t_interval([1.0, 2.0, 3.0])["half_width"], 3)  # t(0.975, 2) · 1 / √3
        2.484
    """
    n = len(values)
    finite = not any(math.isnan(v) for v in values)  # statistics.stdev raises on NaN rather than returning it
    mean = statistics.fmean(values) if n and finite else math.nan
    std = statistics.stdev(values) if n > 1 and finite else math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "half_width": half, "low": mean - half, "high": mean + half,
            "values": list(values)}  # fmt: skip


def _signed_rank_counts(n: int) -> list[int]:
    """How many of the 2^n sign patterns of ranks 1..n give each signed-rank sum T+ = 0 .. n(n+1)/2."""
    counts = [1] + [0] * (n * (n + 1) // 2)
    for rank in range(1, n + 1):
        for total in range(len(counts) - 1, rank - 1, -1):
            counts[total] += counts[total - rank]
    return counts


def median_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float] | None:
    """Hodges-Lehmann estimate of the median of symmetric observations, with its exact distribution-free interval.

    The estimate is the median of the n(n+1)/2 Walsh averages (x_i + x_j)/2, i <= j; the interval runs from
    the k-th smallest to the k-th largest of them, k from the exact null distribution of the Wilcoxon
    signed-rank statistic (Hollander & Wolfe, *Nonparametric Statistical Methods*, 3.2). A far value (a
    diverged run) counts as the largest rank rather than by its size, as it would in a t-interval. Ties are
    treated as if broken at random.

    Args:
        values: The observations (e.g. paired differences, one per seed).
        confidence: The least coverage the interval must have.

    Returns:
        ``{"estimate", "low", "high", "coverage"}`` (``coverage``: the interval's exact coverage, at least
        ``confidence``), or None where a value is NaN or there are too few values for that coverage
        (at 95 %: fewer than 6, since 5 values cover at most 1 − 2/32 = 93.75 %).

    Example:
        >>> diffs = [-0.02, -0.01, 0.005, -0.015, -0.025, -0.02, -0.01, -0.03, -0.005, -5.0]  # one diverged baseline
        >>> found = median_interval(diffs)
        >>> round(found["estimate"], 4), round(found["high"], 4)  # below 0, where the t-interval reaches +0.615
        (-0.0175, -0.0075)
    """
    n = len(values)
    if n == 0 or any(math.isnan(v) for v in values):
        return None
    counts, tail, c = _signed_rank_counts(n), 0, -1  # c: the largest T+ with P(T+ <= c) <= (1 - confidence) / 2
    while tail + counts[c + 1] <= (1 - confidence) / 2 * 2**n:
        c, tail = c + 1, tail + counts[c + 1]
    if c < 0:
        return None
    walsh = sorted((values[i] + values[j]) / 2 for i in range(n) for j in range(i, n))
    return {"estimate": statistics.median(walsh), "low": walsh[c], "high": walsh[-c - 1],
            "coverage": 1 - 2 * tail / 2**n}  # fmt: skip


def paired_difference(
    baseline: dict[int, float], treatment: dict[int, float], confidence: float = 0.95
) -> dict[str, Any]:
    """Per-pair differences ``treatment − baseline`` over the keys both hold, with their t-interval.

    Pairing (here: runs that share a seed, hence data order and initialisation) removes the between-seed
    variance that an unpaired comparison of two means carries.

    Args:
        baseline: Value per pair key (seed).
        treatment: Value per pair key.
        confidence: Coverage of the interval.

    Returns:
        :func:`t_interval` of the differences, plus ``"keys"`` (the shared keys, sorted), ``"below"`` and
        ``"above"`` (how many differences are below and above 0) and ``"signed_rank_p"``: the two-sided
        Wilcoxon signed-rank p-value (exact; zero differences left out; None where no difference is nonzero
        or one is NaN), and ``"median"``: :func:`median_interval` of the differences (None where too few).
        The t-interval is what a target is judged on; the counts, the rank test and the median's interval do
        not let one extreme pair (a diverged run) decide, so a report shows both.

    Example:
        >>> found = paired_difference({1: 0.5, 2: 0.6, 3: 0.7}, {1: 0.4, 2: 0.5, 3: 9.0})
        >>> found["below"], found["above"], found["signed_rank_p"]
        (2, 1, 1.0)
    """
    keys = sorted(set(baseline) & set(treatment))
    values = [treatment[k] - baseline[k] for k in keys]
    nonzero = [v for v in values if v != 0]
    p = None
    if nonzero and not any(math.isnan(v) for v in values):
        p = float(stats.wilcoxon(nonzero, method="exact").pvalue)
    below, above = sum(v < 0 for v in values), sum(v > 0 for v in values)
    return t_interval(values, confidence) | {"keys": keys, "below": below, "above": above, "signed_rank_p": p,
                                             "median": median_interval(values, confidence)}  # fmt: skip


def steps_to_reach(steps: Sequence[int], values: Sequence[float], target: float, lower_is_better: bool) -> dict:
    """Where a learning curve first reaches ``target``, interpolated linearly between its evaluations.

    Args:
        steps: Evaluation steps, increasing.
        values: The curve at those steps.
        target: The value to reach (reaching means ``<=`` for a loss, ``>=`` otherwise).
        lower_is_better: Whether smaller values are better.

    Returns:
        ``{"steps": s, "bound": b}``: ``s`` is None if the curve never reaches the target; ``b`` is True
        when the first evaluation already reaches it, or the one before is NaN (there is no point to
        interpolate from, so ``s`` is then an upper bound on the true step).

    Example:
        >>> steps_to_reach([10, 20, 30], [0.9, 0.7, 0.5], 0.6, lower_is_better=True)
        {'steps': 25.0, 'bound': False}
    """
    sign = 1.0 if lower_is_better else -1.0
    for i, (step, value) in enumerate(zip(steps, values, strict=True)):
        if not sign * (value - target) <= 0:  # NaN never reaches
            continue
        s0, v0 = (steps[i - 1], values[i - 1]) if i else (0, math.nan)
        if math.isnan(v0):
            return {"steps": float(step), "bound": True}
        return {"steps": s0 + (target - v0) / (value - v0) * (step - s0), "bound": False}
    return {"steps": None, "bound": False}


def format_interval(stats: dict[str, Any] | None, digits: int = 3) -> str:
    """``mean ± half-width`` of a :func:`t_interval` result (the half-width left out when undefined; – for none)."""
    if not stats or stats.get("mean") is None or math.isnan(stats["mean"]):
        return "–"
    text = f"{stats['mean']:.{digits}f}"
    half = stats.get("half_width")
    return text if half is None or math.isnan(half) else f"{text} ± {half:.{digits}f}"
