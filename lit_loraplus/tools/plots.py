"""Figures from a CSVLogger ``metrics.csv``: learning rates per group, update norms of A vs B, δ terms.

matplotlib is an optional dependency (``pip install 'lit-loraplus[plots]'``), imported only when a
figure is drawn. Figures are built without pyplot, so no display or backend is needed.

Example:
    >>> from lit_loraplus.plots import plot_feature_terms
    >>> fig = plot_feature_terms("logs/version_0/metrics.csv", save_to="delta.png")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Series = dict[str, tuple[list[float], list[float]]]  # metric -> (steps, values)
_TERM_LABELS = {"delta1": "δ¹ (via A)", "delta2": "δ² (via B)", "delta3": "δ³", "dZ": "ΔZ_B"}


def read_metrics(path: str | Path) -> Series:
    """Every metric of a CSVLogger ``metrics.csv`` as ``{name: (steps, values)}``, empty cells skipped.

    Args:
        path: The ``metrics.csv`` file (or the folder holding it).

    Returns:
        One (steps, values) pair of lists per column except ``step``, in file order.

    Raises:
        FileNotFoundError: If the file does not exist.

    Example:
        >>> steps, values = read_metrics("logs/version_0")["lora/update/B/mean"]  # doctest: +SKIP
    """
    path = Path(path)
    path = path / "metrics.csv" if path.is_dir() else path
    series: Series = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = float(row["step"])
            for key, value in row.items():
                if key != "step" and value not in ("", None):
                    steps, values = series.setdefault(key, ([], []))
                    steps.append(step)
                    values.append(float(value))
    return series


def new_figure(panels: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure of ``panels`` stacked axes, built without pyplot (no display or backend needed).

    Args:
        panels: Number of axes, one above the other.

    Returns:
        ``(figure, axes)``.

    Raises:
        ImportError: If matplotlib is missing (with the install command).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "lit_loraplus.plots needs matplotlib: `pip install 'lit-loraplus[plots]'` (or `pip install matplotlib`)."
        ) from err
    fig = Figure(figsize=(7, 3.2 * panels), layout="constrained")
    return fig, list(fig.subplots(panels, 1, squeeze=False)[:, 0])


def finish_figure(fig: Figure, save_to: str | Path | None) -> Figure:
    """Save ``fig`` as a PNG when ``save_to`` is given; return it."""
    if save_to is not None:
        fig.savefig(save_to, dpi=120)
    return fig


def _require(found: Series, what: str, path: str | Path, available: Series) -> None:
    if not found:
        raise ValueError(f"No {what} in {path}. Columns there: {sorted(available)[:20]}.")


def plot_learning_rates(metrics_csv: str | Path, save_to: str | Path | None = None) -> Figure:
    """Learning rate of each optimizer group over steps (LearningRateMonitor's ``lr-<Optimizer>/<group>``).

    Args:
        metrics_csv: A CSVLogger ``metrics.csv`` (or its folder).
        save_to: Optional PNG path.

    Returns:
        The figure: one line per group, labelled with the group's name (``lora_A``, ``lora_B``, ...).

    Raises:
        ValueError: If the file has no ``lr-`` column (add ``LearningRateMonitor`` to the trainer).

    Example:
        >>> plot_learning_rates("logs/version_0/metrics.csv", save_to="lr.png")  # doctest: +SKIP
    """
    series = read_metrics(metrics_csv)
    lrs = {k: v for k, v in series.items() if k.startswith("lr-")}
    _require(lrs, "learning-rate column (lr-*; add LearningRateMonitor)", metrics_csv, series)
    fig, (ax,) = new_figure()
    for key, (steps, values) in lrs.items():
        ax.plot(steps, values, label=key.split("/", 1)[-1])
    ax.set(xlabel="step", ylabel="learning rate", yscale="log", title="Learning rate per group")
    ax.legend(fontsize="small")
    return finish_figure(fig, save_to)


def plot_update_norms(metrics_csv: str | Path, layers: str | None = None, save_to: str | Path | None = None) -> Figure:
    """‖ΔA‖ (solid) and ‖ΔB‖ (dashed) per layer over steps, from :class:`UpdateNormMonitor`.

    Args:
        metrics_csv: A CSVLogger ``metrics.csv`` (or its folder).
        layers: Regular expression over layer names; ``None`` plots all (and the means).
        save_to: Optional PNG path.

    Returns:
        The figure: one colour per layer, log-scaled norms.

    Raises:
        ValueError: If no ``lora/update/A/...`` column matches.

    Example:
        >>> plot_update_norms("logs/version_0/metrics.csv", layers="value", save_to="upd.png")  # doctest: +SKIP
    """
    series = read_metrics(metrics_csv)
    names = [k.removeprefix("lora/update/A/") for k in series if k.startswith("lora/update/A/")]
    names = [n for n in names if n != "max" and (layers is None or re.search(layers, n))]
    _require({n: series[f"lora/update/A/{n}"] for n in names}, "update norms (lora/update/A/*)", metrics_csv, series)
    fig, (ax,) = new_figure()
    for i, name in enumerate(names):
        color = f"C{i % 10}"
        for matrix, style in (("A", "-"), ("B", "--")):
            if (key := f"lora/update/{matrix}/{name}") in series:
                ax.plot(*series[key], style, color=color, label=f"{name} {matrix}")
    ax.set(xlabel="step", ylabel="‖Δ‖_F", title="LoRA update norms: A (solid) vs B (dashed)")
    ax.set_yscale("log", nonpositive="mask")  # a 0 (e.g. ΔA at step 1 when B = 0) is left out
    ax.legend(fontsize="x-small", ncol=2)
    return finish_figure(fig, save_to)


def plot_feature_terms(metrics_csv: str | Path, layer: str = "mean", save_to: str | Path | None = None) -> Figure:
    """RMS of δ¹, δ², δ³ and ΔZ_B over steps (top) and the balance log(‖δ²‖/‖δ¹‖) (bottom).

    Args:
        metrics_csv: A CSVLogger ``metrics.csv`` from a run with :class:`FeatureLearningMonitor`.
        layer: A layer name as logged, or ``mean`` (the average over layers).
        save_to: Optional PNG path.

    Returns:
        The two-panel figure.

    Raises:
        ValueError: If the file has no ``lora/feature/.../<layer>`` column.

    Example:
        >>> plot_feature_terms("logs/version_0/metrics.csv", layer="mean", save_to="delta.png")  # doctest: +SKIP
    """
    series = read_metrics(metrics_csv)
    terms = {t: series[k] for t in _TERM_LABELS if (k := f"lora/feature/{t}/{layer}") in series}
    _require(terms, f"feature terms for layer {layer!r} (lora/feature/*/{layer})", metrics_csv, series)
    fig, (top, bottom) = new_figure(2)
    for term, (steps, values) in terms.items():
        top.plot(steps, values, label=_TERM_LABELS[term], linestyle=":" if term == "dZ" else "-")
    top.set(ylabel="RMS", title=f"Feature-learning terms, {layer}")
    top.set_yscale("log", nonpositive="mask")
    top.legend(fontsize="small")
    if (key := f"lora/feature/balance/{layer}") in series:
        bottom.plot(*series[key], color="C4")
    bottom.axhline(0.0, color="grey", linewidth=0.8)
    bottom.set(xlabel="step", ylabel="log(‖δ²‖/‖δ¹‖)", title="Balance (0 = A and B contribute equally)")
    return finish_figure(fig, save_to)
