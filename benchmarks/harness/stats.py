"""Ratios against a baseline of the same round, their spread, a verdict against a target, and tables.

A variant is only ever divided by the baseline that ran in the same round (or block): the machine's
speed drifts by ±15-20 % over minutes, so ratios across rounds would measure the drift. The
per-round ratios are summarised by their median and range, and a target is met only if the whole
range meets it. Pure standard library.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def spread(values: Sequence[float]) -> dict[str, Any]:
    """``{"median", "min", "max", "pairs"}`` of a list of per-pair values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "pairs": list(values)}


def pair_ratios(
    runs: list[list[dict[str, Any]]], key: str, numerator: str, denominator: str, metrics: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per metric, the ratio numerator / denominator within each round, summarised by :func:`spread`.

    Args:
        runs: Results round by round (:func:`benchmarks.harness.processes.run_rounds`).
        key: The result field that names the variant.
        numerator: The variant measured.
        denominator: Its baseline.
        metrics: Result fields to divide (e.g. ``median_s``, ``peak_rss_mb``).

    Returns:
        ``{metric: spread of the per-round ratios}``.
    """
    ratios: dict[str, list[float]] = {m: [] for m in metrics}
    for results in runs:
        by_name = {r[key]: r for r in results}
        for m in metrics:
            ratios[m].append(by_name[numerator][m] / by_name[denominator][m])
    return {m: spread(v) for m, v in ratios.items()}


def verdict(ratio: dict[str, Any], target: float) -> str:
    """``met`` if the whole spread is at or below ``target``, ``missed`` if all above, else ``unclear``."""
    if ratio["max"] <= target:
        return "met"
    return "missed" if ratio["min"] > target else "unclear"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
