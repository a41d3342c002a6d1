"""Figures of the evidence report: seed-mean held-out curves with 95 % bands, and the η_A × λ selection heatmap.

Drawn without pyplot (no display or backend needed); matplotlib is the package's ``plots`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARM_STYLE = {"lora": ("LoRA (λ = 1)", "tab:blue"), "loraplus": ("LoRA+ (λ > 1)", "tab:red")}


def _figure(panels: int, width: float = 5.0, height: float = 3.6) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * panels, height), layout="constrained")
    return fig, [fig.add_subplot(1, panels, i + 1) for i in range(panels)]


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def plot_curves(
    name: str, curves: dict[str, dict[str, dict[str, list[float]]]], path: Path, split: str = "dev"
) -> None:
    """One panel per held-out key: each arm's seed-mean curve on ``split`` and its 95 % band.

    Args:
        name: ``<task>-<init>``, the title.
        curves: ``{arm: {key: report.band(...)}}``.
        path: PNG file.
        split: What the seed runs were scored on (``dev``, or ``test`` for the causal task).
    """
    keys = list(next(iter(curves.values())))
    fig, axes = _figure(len(keys))
    for ax, key in zip(axes, keys, strict=True):
        for arm, by_key in curves.items():
            label, colour = ARM_STYLE[arm]
            curve = by_key[key]
            ax.plot(curve["steps"], curve["mean"], color=colour, marker="o", markersize=3, label=label)
            ax.fill_between(curve["steps"], curve["low"], curve["high"], color=colour, alpha=0.2, linewidth=0)
        ax.set(xlabel="step", ylabel=f"{split} {key}", title=f"{name}: {split} {key} (seed mean, 95 % CI)")
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def plot_selection(name: str, arms: dict[str, dict[str, Any]], path: Path) -> None:
    """Heatmap of the selection-split loss at rung 0 over η_A × λ (both arms); cells run to N show
    ``rung → N`` and each arm's choice is framed. The colours span the best rung loss to twice it, so a
    diverged cell (shown in the top colour, its value written) does not flatten the rest.

    Args:
        name: ``<task>-<init>``, the title.
        arms: The summary's ``arms`` (each with ``grid`` and ``choice``).
        path: PNG file.
    """
    import numpy as np
    from matplotlib.patches import Rectangle

    cells = [cell for arm in arms.values() for cell in arm["grid"]]
    if not cells:
        return
    lrs = sorted({c["lr"] for c in cells})
    ratios = sorted({c["ratio"] for c in cells})
    grid = np.full((len(lrs), len(ratios)), np.nan)
    fig, (ax,) = _figure(1, width=1.3 * len(ratios) + 2.5, height=0.6 * len(lrs) + 1.8)
    for cell in cells:
        grid[lrs.index(cell["lr"]), ratios.index(cell["ratio"])] = (
            np.nan if cell["rung_loss"] is None else cell["rung_loss"]
        )
    finite = grid[np.isfinite(grid)]
    low, top = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    high = max(min(top, 2 * low), low + 1e-9)
    for cell in cells:
        i, j = lrs.index(cell["lr"]), ratios.index(cell["ratio"])
        rung, full = cell["rung_loss"], cell["full_loss"]
        text = "–" if rung is None else f"{rung:.3f}" + ("" if full is None else f"\n→ {full:.3f}")
        dark = rung is not None and rung > low + 0.6 * (high - low)  # the dark end of viridis_r
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    image = ax.imshow(grid, cmap="viridis_r", aspect="auto", origin="lower", vmin=low, vmax=high)
    for arm in arms.values():
        if arm["choice"]:
            i, j = lrs.index(arm["choice"]["lr"]), ratios.index(arm["choice"]["ratio"])
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(len(ratios)), [f"{r:g}" for r in ratios])
    ax.set_yticks(range(len(lrs)), [f"{v:g}" for v in lrs])
    ax.set(xlabel="λ (1 = LoRA)", ylabel="η_A", title=f"{name}: selection loss at rung 0 (→ at N); choices framed")
    fig.colorbar(image, ax=ax, label="selection-split loss at rung 0", extend="max" if top > high else "neither")
    _save(fig, path)
