"""The convergence benchmark's figures: heatmaps of the grid and learning curves of the best cells (no pyplot)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.evidence.v1.report import LOWER_IS_BETTER, Record, mean_curve
from benchmarks.harness.results import new_figure


def plot_heatmaps(arm: str, summary: dict[str, Any], save_to: Path) -> None:
    """Final held-out loss and task metric over (η_A, λ), one panel each, like the paper's figures.

    Diverged cells read "div."; the best λ = 1 cell is framed in blue, the best λ > 1 cell in red.

    Args:
        arm: Arm name, for the title.
        summary: The arm's :func:`summarise_arm` output.
        save_to: PNG path.
    """
    from matplotlib.patches import Rectangle  # the plots extra, like the figure itself

    metric = summary["metric"]
    lrs = sorted({c["lr"] for c in summary["grid"]})
    ratios = sorted({c["ratio"] for c in summary["grid"]})
    fig = new_figure(4.2 * 2, 0.5 * len(lrs) + 2.2)
    axes = fig.subplots(1, 2, squeeze=False)
    for ax, key in zip(axes[0], ("loss", metric), strict=True):
        values = np.full((len(lrs), len(ratios)), np.nan)
        for c in summary["grid"]:
            values[lrs.index(c["lr"]), ratios.index(c["ratio"])] = c[key]
        cmap = "viridis_r" if key in LOWER_IS_BETTER else "viridis"
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto", origin="lower")
        for (i, j), v in np.ndenumerate(values):
            red, green, blue, _ = image.cmap(image.norm(v)) if not np.isnan(v) else (1, 1, 1, 1)
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # text colour readable on the cell
            text = "div." if np.isnan(v) else f"{v:.3f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="w" if dark else "k")
        for name, color in (("best_lora", "C0"), ("best_loraplus", "C3")):  # frame the chosen cells
            if cell := summary.get(name):
                row, col = lrs.index(cell["lr"]), ratios.index(cell["ratio"])
                ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor=color, linewidth=2))
        ax.set_xticks(range(len(ratios)), [f"{r:g}" for r in ratios])
        ax.set_yticks(range(len(lrs)), [f"{lr:.2g}" for lr in lrs])
        ax.set(xlabel="λ = η_B / η_A", ylabel="η_A", title=f"{arm}: final held-out {key}")
        fig.colorbar(image, ax=ax)
    fig.savefig(save_to, dpi=110)


def plot_curves(arm: str, summary: dict[str, Any], lora: list[Record], loraplus: list[Record], save_to: Path) -> None:
    """Held-out loss and task metric over steps: best LoRA (λ = 1) vs best LoRA+ (seed mean, min-max band).

    Args:
        arm: Arm name, for the title.
        summary: The arm's :func:`summarise_arm` output (target lines and cells for the legend).
        lora: The best λ = 1 cell's runs.
        loraplus: The best λ > 1 cell's runs.
        save_to: PNG path.
    """
    metric = summary["metric"]
    fig = new_figure(9.0, 3.4)
    axes = fig.subplots(1, 2, squeeze=False)
    for ax, key in zip(axes[0], ("loss", metric), strict=True):
        for name, runs, color in (("best_lora", lora, "C0"), ("best_loraplus", loraplus, "C3")):
            cell = summary[name]
            steps, mean = mean_curve(runs, key)
            rows = [[row.get(key) for row in r["evals"]] for r in runs]
            low = [min((v for v in col if v is not None), default=math.nan) for col in zip(*rows, strict=False)]
            high = [max((v for v in col if v is not None), default=math.nan) for col in zip(*rows, strict=False)]
            label = f"λ={cell['ratio']:g}, η_A={cell['lr']:.2g} ({len(runs)} seeds)"
            ax.plot(steps, mean, color=color, marker="o", markersize=3, label=label)
            ax.fill_between(steps, low[: len(steps)], high[: len(steps)], color=color, alpha=0.2)
        target = summary.get("steps_to_target", {}).get(key)
        if target:
            ax.axhline(target["target"], color="grey", linestyle=":", linewidth=1, label="LoRA's final (target)")
            if target["loraplus_steps"]:
                ax.axvline(target["loraplus_steps"], color="C3", linestyle=":", linewidth=1)
        ax.set(xlabel="step", ylabel=f"held-out {key}", title=f"{arm}: {key}")
        ax.legend(fontsize="x-small")
    fig.savefig(save_to, dpi=110)
