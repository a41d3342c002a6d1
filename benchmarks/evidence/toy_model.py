"""The LoRA+ paper's toy model (Hayou, Ghosh, Yu 2024, §3.2), trained by plain gradient descent.

    python -m benchmarks.evidence.toy_model --out benchmarks/results/toy_model   # ~3-4 min on 2 cores
    python -m benchmarks.evidence.toy_model --out /tmp/toy_model --smoke         # seconds

Model: f(x) = W_out · ReLU((W* + B·A) · ReLU(W_in · x)), hidden width n, LoRA rank r; data X ~ N(0, I_d),
Y = sin(mean(X)); d = 5, n = 100, r = 4 as in the paper; N samples, full batch. Every frozen matrix is
N(0, 1/fan_in), so pre-activations are Θ(1) at any width: W_in (n×d) ~ N(0, 1/d), W* (n×n) ~ N(0, s²/n)
with s = ``w_star_scale``, W_out (1×n) ~ N(0, 1/n). Only A (r×n) and B (n×r) train, by plain full-batch
GD on the mean squared error, A with η_A and B with η_B. Float64 throughout.

Why W* (a frozen "pretrained" middle weight, as in every LoRA layer): the paper writes the middle
layer as B·A alone. Under either initialisation B·A = 0 at step 0, so every ReLU input is exactly 0,
its derivative there is 0, and GD never moves (``w_star_scale=0`` reproduces this; tested).

Initialisations (``init``): ``standard`` (PEFT's, the paper's Init[1]: A ~ N(0, 1/n), B = 0) and
``loraplus`` (the paper's Init[2]: B ~ N(0, 1/r), A = 0).

Feature-learning terms (§4) of step t for the LoRA branch Z_B = B·A·z, z = ReLU(W_in x) held fixed:
δ¹ = B_{t−1}ΔA_t z, δ² = ΔB_t A_{t−1} z, δ³ = ΔB_tΔA_t z, and δ¹ + δ² + δ³ = ΔZ_B exactly; the
output then moves by Δf = W_out·[ReLU(W*z + Z_B + ΔZ_B) − ReLU(W*z + Z_B)].

What the run measures (written to ``--out``):

- ``heatmap_<init>.png``: training loss after ``--steps`` GD steps over a log grid of (η_A, η_B) at
  n = 100; the JSON gives the optimum (η_A*, η_B*, their ratio) and the best loss on the diagonal
  η_A = η_B.
- ``width.png``: RMS of δ¹ and δ² at GD step 2 (the first with both non-zero under the standard init)
  vs width n = 64 … 4096 (log-log, geometric mean over ``--seeds`` problems) under three settings:
  equal rates (η_A = η_B = η), a fixed ratio (η_B = 16η_A), and the paper's width scaling
  (η_A = η·n₀/n, η_B = 16η: λ = 16·n/n₀ grows with n). The JSON holds the values, the fitted log-log
  slopes of δ¹, δ² and δ²/δ¹, and how many seeds diverged within ``--width-steps`` steps.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from benchmarks.harness.results import json_ready, new_figure

Init = Literal["standard", "loraplus"]
INITS: tuple[Init, ...] = ("standard", "loraplus")
TERMS = ("delta1", "delta2", "delta3", "dZ")
DTYPE = torch.float64


@dataclass(frozen=True)
class ToyProblem:
    """One data set and the frozen weights of the toy model, with the frozen part of the forward cached.

    Attributes:
        y: Targets sin(mean(x)), (N,).
        z: LoRA-layer input ReLU(W_in x), (N, n).
        base: Frozen pre-activation W* z, (N, n).
        w_out: Output weights, (n,).
    """

    y: Tensor
    z: Tensor
    base: Tensor
    w_out: Tensor

    @property
    def width(self) -> int:
        """The hidden width n."""
        return self.z.shape[1]


def make_problem(
    width: int = 100, dim: int = 5, samples: int = 1000, w_star_scale: float = 1.0, seed: int = 0
) -> ToyProblem:
    """Draw the data and the frozen weights (all N(0, 1/fan_in)), in float64.

    Args:
        width: Hidden width n.
        dim: Input dimension d.
        samples: Number of training samples N.
        w_star_scale: Standard deviation of W* in units of 1/√n; 0 gives the paper's literal B·A middle
            layer, which cannot train from either initialisation (see the module docstring).
        seed: Seed of every draw.

    Returns:
        The problem.

    Raises:
        ValueError: For a non-positive width, dimension or sample count, or a negative ``w_star_scale``.
    """
    sizes = {"width": width, "dim": dim, "samples": samples}
    problems = [f"`{k}={v!r}` must be a positive integer." for k, v in sizes.items() if v < 1]
    if w_star_scale < 0:
        problems.append(f"`w_star_scale={w_star_scale!r}` must be >= 0.")
    if problems:
        raise ValueError("Invalid toy problem: " + " ".join(problems))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, dim, generator=g, dtype=DTYPE)
    w_in = torch.randn(width, dim, generator=g, dtype=DTYPE) / math.sqrt(dim)
    w_star = torch.randn(width, width, generator=g, dtype=DTYPE) * (w_star_scale / math.sqrt(width))
    w_out = torch.randn(width, generator=g, dtype=DTYPE) / math.sqrt(width)
    z = torch.relu(x @ w_in.T)  # (N, n)
    return ToyProblem(y=torch.sin(x.mean(dim=1)), z=z, base=z @ w_star.T, w_out=w_out)


def init_adapters(width: int, rank: int = 4, init: Init = "standard", seed: int = 0) -> tuple[Tensor, Tensor]:
    """A (r, n) and B (n, r) at step 0.

    Args:
        width: Hidden width n.
        rank: LoRA rank r.
        init: ``standard`` (A ~ N(0, 1/n), B = 0) or ``loraplus`` (the paper's Init[2]: B ~ N(0, 1/r), A = 0).
        seed: Seed of the random matrix.

    Returns:
        ``(A, B)`` in float64.

    Raises:
        ValueError: For an unknown ``init`` or a non-positive rank.
    """
    if init not in INITS:
        raise ValueError(f"`init={init!r}` must be one of {INITS}.")
    if rank < 1:
        raise ValueError(f"`rank={rank!r}` must be a positive integer (the LoRA rank).")
    g = torch.Generator().manual_seed(seed + 10_000)  # independent of the problem's draws
    a, b = torch.zeros(rank, width, dtype=DTYPE), torch.zeros(width, rank, dtype=DTYPE)
    if init == "standard":
        a = torch.randn(rank, width, generator=g, dtype=DTYPE) / math.sqrt(width)
    else:
        b = torch.randn(width, rank, generator=g, dtype=DTYPE) / math.sqrt(rank)
    return a, b


def lora_output(problem: ToyProblem, a: Tensor, b: Tensor) -> Tensor:
    """The LoRA branch Z_B = B·A·z of every sample, (N, n)."""
    return (problem.z @ a.T) @ b.T


def forward(problem: ToyProblem, a: Tensor, b: Tensor) -> Tensor:
    """f(x) = W_out · ReLU(W* z + B·A·z) for every sample, (N,)."""
    return torch.relu(problem.base + lora_output(problem, a, b)) @ problem.w_out


def mse(problem: ToyProblem, a: Tensor, b: Tensor) -> Tensor:
    """The training loss: mean over samples of (f(x) − y)²."""
    return (forward(problem, a, b) - problem.y).pow(2).mean()


def gd_step(problem: ToyProblem, a: Tensor, b: Tensor, lr_a: float, lr_b: float) -> tuple[Tensor, Tensor, Tensor]:
    """One plain full-batch gradient-descent step on A and B (nothing else trains).

    Args:
        problem: The data and frozen weights.
        a: A before the step, (r, n).
        b: B before the step, (n, r).
        lr_a: η_A.
        lr_b: η_B.

    Returns:
        ``(A_t, B_t, loss before the step)``.
    """
    a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
    loss = mse(problem, a, b)
    grad_a, grad_b = torch.autograd.grad(loss, (a, b))
    return (a - lr_a * grad_a).detach(), (b - lr_b * grad_b).detach(), loss.detach()


def lora_terms(z: Tensor, a0: Tensor, b0: Tensor, a1: Tensor, b1: Tensor) -> dict[str, Tensor]:
    """δ¹, δ², δ³ and ΔZ_B of one step, in the inputs' precision (float64 here).

    The callbacks' :func:`lit_loraplus.core.feature_terms.feature_terms` computes the same terms in
    float32 for real layers (with the α/r scaling); this version keeps float64 so the toy model's identity
    δ¹ + δ² + δ³ = ΔZ_B can be checked to ~1e-15.

    Args:
        z: LoRA-layer input, (N, n).
        a0: A before the step, (r, n).
        b0: B before the step, (n, r).
        a1: A after the step.
        b1: B after the step.

    Returns:
        ``{"delta1", "delta2", "delta3", "dZ"}``, each (N, n).
    """
    z_a, dz_a = z @ a0.T, z @ (a1 - a0).T  # (N, r)
    db = b1 - b0  # (n, r)
    return {
        "delta1": dz_a @ b0.T,  # B_{t−1} ΔA z
        "delta2": z_a @ db.T,  # ΔB A_{t−1} z
        "delta3": dz_a @ db.T,  # ΔB ΔA z
        "dZ": (z @ a1.T) @ b1.T - z_a @ b0.T,  # B_t A_t z − B_{t−1} A_{t−1} z
    }


def rms(x: Tensor) -> float:
    """Root mean square over every entry."""
    return float(x.pow(2).mean().sqrt())


@dataclass
class Trajectory:
    """One GD run: losses before each step and after the last, and the RMS of each δ term per step.

    Attributes:
        losses: ``steps + 1`` values (fewer if the run diverged).
        terms: Per step, ``{"delta1", "delta2", "delta3", "dZ"}`` RMS over samples and features.
        diverged: Whether the loss became non-finite or exceeded ``max_loss`` (the run stops there).
    """

    losses: list[float]
    terms: list[dict[str, float]]
    diverged: bool

    @property
    def final_loss(self) -> float:
        """The loss after the last step, ``inf`` for a diverged run."""
        return math.inf if self.diverged else self.losses[-1]


def train(
    problem: ToyProblem,
    lr_a: float,
    lr_b: float,
    steps: int,
    rank: int = 4,
    init: Init = "standard",
    seed: int = 0,
    track_terms: bool = True,
    max_loss: float = 1e6,
) -> Trajectory:
    """Train A and B by plain GD for ``steps`` steps and record the loss and the δ terms.

    Args:
        problem: The data and frozen weights.
        lr_a: η_A.
        lr_b: η_B.
        steps: GD steps.
        rank: LoRA rank r.
        init: ``standard`` or ``loraplus`` (see :func:`init_adapters`).
        seed: Seed of the adapters' initialisation.
        track_terms: Record the δ terms of every step (off for loss grids: it costs three extra products).
        max_loss: A loss above this (or non-finite) counts as divergence and stops the run.

    Returns:
        The trajectory.
    """
    a, b = init_adapters(problem.width, rank, init, seed)
    losses: list[float] = []
    terms: list[dict[str, float]] = []
    for _ in range(steps):
        a1, b1, loss = gd_step(problem, a, b, lr_a, lr_b)
        losses.append(float(loss))
        if not math.isfinite(losses[-1]) or losses[-1] > max_loss:
            return Trajectory(losses, terms, diverged=True)
        if track_terms:
            terms.append({k: rms(v) for k, v in lora_terms(problem.z, a, b, a1, b1).items()})
        a, b = a1, b1
    losses.append(float(mse(problem, a, b)))
    diverged = not math.isfinite(losses[-1]) or losses[-1] > max_loss
    return Trajectory(losses, terms, diverged)


def loss_grid(
    problem: ToyProblem, lrs_a: list[float], lrs_b: list[float], steps: int, init: Init = "standard", rank: int = 4
) -> list[list[float]]:
    """Final training loss for every (η_A, η_B) pair, all from the same initialisation; ``inf`` where GD diverged.

    Returns:
        ``grid[i][j]`` = loss after ``steps`` steps with ``lrs_a[i]`` and ``lrs_b[j]``.
    """
    return [
        [train(problem, lr_a, lr_b, steps, rank, init, track_terms=False).final_loss for lr_b in lrs_b]
        for lr_a in lrs_a
    ]


def grid_optimum(lrs_a: list[float], lrs_b: list[float], grid: list[list[float]]) -> dict[str, float]:
    """The best cell of a loss grid, and the best cell on the diagonal η_A = η_B (grids must share values).

    Returns:
        ``lr_a``, ``lr_b``, ``ratio`` (η_B/η_A), ``loss`` at the optimum, and ``equal_lr`` / ``equal_loss``,
        the best equal-rate cell (absent when the grids share no value).
    """
    cells = [(grid[i][j], i, j) for i in range(len(lrs_a)) for j in range(len(lrs_b))]
    loss, i, j = min(cells)
    best: dict[str, float] = {"lr_a": lrs_a[i], "lr_b": lrs_b[j], "ratio": lrs_b[j] / lrs_a[i], "loss": loss}
    diagonal = [(grid[i][j], lrs_a[i]) for i, j in _diagonal(lrs_a, lrs_b)]
    if diagonal:
        best["equal_loss"], best["equal_lr"] = min(diagonal)
    return best


def _diagonal(lrs_a: list[float], lrs_b: list[float]) -> list[tuple[int, int]]:
    """Index pairs (i, j) with lrs_a[i] == lrs_b[j] (to a relative 1e-9)."""
    return [(i, j) for i, la in enumerate(lrs_a) for j, lb in enumerate(lrs_b) if math.isclose(la, lb, rel_tol=1e-9)]


def width_rates(setting: str, width: int, lr: float, ratio: float, ref_width: int) -> tuple[float, float]:
    """(η_A, η_B) of a width-sweep setting at width n.

    Args:
        setting: ``equal`` (η, η), ``fixed_ratio`` (η, λη) or ``scaled`` (η·n₀/n, λη: the paper's
            η_A = Θ(n⁻¹), η_B = Θ(1), i.e. a ratio λ·n/n₀ growing with n).
        width: n.
        lr: η.
        ratio: λ.
        ref_width: n₀, where ``scaled`` equals ``fixed_ratio``.

    Raises:
        ValueError: For an unknown setting.
    """
    if setting == "equal":
        return lr, lr
    if setting == "fixed_ratio":
        return lr, ratio * lr
    if setting == "scaled":
        return lr * ref_width / width, ratio * lr
    raise ValueError(f"`setting={setting!r}` must be 'equal', 'fixed_ratio' or 'scaled'.")


SETTINGS = ("equal", "fixed_ratio", "scaled")


def loglog_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x) (nan with fewer than two positive, finite points)."""
    points = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if y > 0 and math.isfinite(y)]
    if len(points) < 2:
        return math.nan
    mx = sum(p[0] for p in points) / len(points)
    my = sum(p[1] for p in points) / len(points)
    return sum((px - mx) * (py - my) for px, py in points) / sum((px - mx) ** 2 for px, _ in points)


def width_sweep(
    widths: list[int],
    lr: float,
    ratio: float,
    steps: int,
    samples: int,
    seeds: int,
    measure_step: int = 2,
    init: Init = "standard",
    rank: int = 4,
) -> dict[str, Any]:
    """RMS of δ¹, δ², δ³ at one GD step vs width, per setting (geometric mean over seeds), with log-log slopes.

    Args:
        widths: Widths n, ascending; the first is n₀ of the ``scaled`` setting.
        lr: η (see :func:`width_rates`).
        ratio: λ.
        steps: GD steps per run (divergence within them is counted).
        samples: Samples N per problem.
        seeds: Problems (and initialisations) per width.
        measure_step: The step whose terms are reported; 2 is the first with δ¹ ≠ 0 under the standard init
            (B = 0 before step 1).
        init: Initialisation of the adapters.
        rank: LoRA rank r.

    Returns:
        ``{setting: {"lr_a", "lr_b", "delta1", "delta2", "delta3", "diverged", "slopes"}}``: lists over widths
        (``diverged`` counts the seeds whose loss blew up within ``steps``); ``slopes`` holds the fitted
        log-log slopes of δ¹, δ² and δ²/δ¹ against n.

    Raises:
        ValueError: If ``measure_step`` is not in [1, steps].
    """
    if not 1 <= measure_step <= steps:
        raise ValueError(f"`measure_step={measure_step!r}` must be between 1 and `steps={steps!r}`.")
    keys = ("lr_a", "lr_b", "delta1", "delta2", "delta3", "diverged")
    out: dict[str, Any] = {setting: {k: [] for k in keys} for setting in SETTINGS}
    for width in widths:
        problems = [make_problem(width, samples=samples, seed=s) for s in range(seeds)]
        for setting in SETTINGS:
            lr_a, lr_b = width_rates(setting, width, lr, ratio, widths[0])
            runs = [train(p, lr_a, lr_b, steps, rank, init, seed=s) for s, p in enumerate(problems)]
            row = out[setting]
            row["lr_a"].append(lr_a)
            row["lr_b"].append(lr_b)
            row["diverged"].append(sum(r.diverged for r in runs))
            for term in ("delta1", "delta2", "delta3"):
                values = [r.terms[measure_step - 1][term] for r in runs if len(r.terms) >= measure_step]
                row[term].append(_geometric_mean(values))
    for row in out.values():
        ratios = [d2 / d1 if d1 > 0 else math.nan for d1, d2 in zip(row["delta1"], row["delta2"], strict=True)]
        row["slopes"] = {
            "delta1": loglog_slope(widths, row["delta1"]),
            "delta2": loglog_slope(widths, row["delta2"]),
            "delta2_over_delta1": loglog_slope(widths, ratios),
        }
    return out


def _geometric_mean(values: list[float]) -> float:
    """Geometric mean of the positive finite values (nan if there are none)."""
    kept = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, kept)) / len(kept)) if kept else math.nan


def plot_heatmap(
    lrs_a: list[float], lrs_b: list[float], grid: list[list[float]], title: str, save_to: str | Path | None = None
) -> Any:
    """log10 of the final loss over the (η_A, η_B) grid; diverged cells blank, the optimum starred, η_A = η_B dashed.

    Returns:
        The matplotlib figure.
    """
    import numpy as np

    values = np.log10(np.array(grid, dtype=float))  # (len(lrs_a), len(lrs_b)); inf stays inf
    values[~np.isfinite(values)] = np.nan
    fig = new_figure(5.2, 4.2)
    ax = fig.subplots()
    image = ax.imshow(values, origin="lower", cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label="log10 training loss (blank: diverged)")
    ticks_b, ticks_a = range(0, len(lrs_b), 2), range(0, len(lrs_a), 2)
    ax.set_xticks(list(ticks_b), [f"{lrs_b[j]:.0e}" for j in ticks_b], rotation=45, fontsize="small")
    ax.set_yticks(list(ticks_a), [f"{lrs_a[i]:.0e}" for i in ticks_a], fontsize="small")
    ax.set(xlabel="η_B", ylabel="η_A", title=title)
    diagonal = _diagonal(lrs_a, lrs_b)
    if diagonal:
        ax.plot([j for _, j in diagonal], [i for i, _ in diagonal], "w--", linewidth=1, label="η_A = η_B")
    i, j = np.unravel_index(np.nanargmin(values), values.shape)
    ax.plot(j, i, "r*", markersize=14, label="optimum")
    ax.legend(fontsize="small", loc="upper right")  # the diverged (blank) corner
    if save_to is not None:
        fig.savefig(save_to, dpi=90)
    return fig


def plot_width_sweep(
    widths: list[int], sweep: dict[str, Any], measure_step: int = 2, save_to: str | Path | None = None
) -> Any:
    """Left: RMS of δ¹ (solid) and δ² (dashed) vs width, one colour per setting; right: δ²/δ¹. Log-log.

    Returns:
        The matplotlib figure.
    """
    fig = new_figure(10.0, 4.0)
    terms, balance = fig.subplots(1, 2)
    for k, (setting, row) in enumerate(sweep.items()):
        slopes, color = row["slopes"], f"C{k}"
        terms.plot(widths, row["delta1"], "o-", color=color, label=f"{setting}: δ¹ (slope {slopes['delta1']:+.2f})")
        terms.plot(widths, row["delta2"], "s--", color=color, label=f"{setting}: δ² (slope {slopes['delta2']:+.2f})")
        ratios = [d2 / d1 for d1, d2 in zip(row["delta1"], row["delta2"], strict=True)]
        balance.plot(widths, ratios, "o-", color=color, label=f"{setting} (slope {slopes['delta2_over_delta1']:+.2f})")
    terms.set(xlabel="width n", ylabel=f"RMS at GD step {measure_step}", title="δ¹ (via A) and δ² (via B)")
    balance.axhline(1.0, color="grey", linewidth=0.8)
    balance.set(xlabel="width n", ylabel="δ² / δ¹", title="Balance (1 = A and B move the features equally)")
    for ax in (terms, balance):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", nonpositive="mask")
        ax.legend(fontsize="x-small")
    if save_to is not None:
        fig.savefig(save_to, dpi=80)
    return fig


def _log_grid(low: float, high: float, points: int) -> list[float]:
    """``points`` log-spaced values from ``low`` to ``high`` (both included)."""
    return [low * (high / low) ** (k / (points - 1)) for k in range(points)]


def run(out: Path, smoke: bool = False, steps: int = 200, width_steps: int = 10, seeds: int = 8) -> dict[str, Any]:
    """The full benchmark: heatmaps for both inits at n = 100, then the width sweep; writes JSON and PNGs.

    Args:
        out: Output folder (created).
        smoke: A tiny version (5×5 grid, three widths, one seed, few steps) for tests.
        steps: GD steps per heatmap cell.
        width_steps: GD steps per width-sweep run (the terms of step 2 are reported; divergence within the
            steps is counted).
        seeds: Problems per width in the sweep.

    Returns:
        The results, as written to ``toy_model.json`` (non-finite values there are null).
    """
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    start = time.perf_counter()
    if smoke:
        steps, width_steps, seeds = min(steps, 20), min(width_steps, 3), 1
    lrs = _log_grid(1e-3, 1e2, 5 if smoke else 11)  # the same values for η_A and η_B: the diagonal is on the grid
    problem = make_problem(width=100, samples=200 if smoke else 1000)
    results: dict[str, Any] = {
        "setting": {
            "model": "f(x) = W_out ReLU((W* + B A) ReLU(W_in x)), frozen weights N(0, 1/fan_in), float64",
            "d": 5,
            "n": 100,
            "r": 4,
            "samples": problem.z.shape[0],
            "target": "sin(mean(x))",
            "optimizer": "plain full-batch GD on MSE, A and B only",
            "steps": steps,
            "smoke": smoke,
        },
        "heatmap": {"lrs": lrs},
    }
    for init in INITS:
        grid = loss_grid(problem, lrs, lrs, steps, init)
        results["heatmap"][init] = {"loss": grid, "optimum": grid_optimum(lrs, lrs, grid)}
        plot_heatmap(lrs, lrs, grid, f"Toy model, n = 100, {steps} GD steps, init {init}", out / f"heatmap_{init}.png")
    widths = [64, 128, 256] if smoke else [64, 128, 256, 512, 1024, 2048, 4096]
    config = {"lr": 0.1, "ratio": 16.0, "steps": width_steps, "samples": 64 if smoke else 256, "seeds": seeds}
    sweep = width_sweep(widths, measure_step=2, init="standard", **config)
    results["width_sweep"] = {"widths": widths, "init": "standard", "measure_step": 2, **config, "settings": sweep}
    plot_width_sweep(widths, sweep, measure_step=2, save_to=out / "width.png")
    results["seconds"] = round(time.perf_counter() - start, 1)
    (out / "toy_model.json").write_text(json.dumps(json_ready(results), indent=1, allow_nan=False) + "\n")
    return results


def summary(results: dict[str, Any]) -> str:
    """A few lines of text: each heatmap's optimum and the width-sweep slopes."""
    lines = []
    for init in INITS:
        o = results["heatmap"][init]["optimum"]
        lines.append(
            f"init {init}: optimum η_A={o['lr_a']:.2g}, η_B={o['lr_b']:.2g} (η_B/η_A={o['ratio']:.3g}), "
            f"loss {o['loss']:.4g}; best with η_A=η_B: {o.get('equal_loss', math.nan):.4g} "
            f"at {o.get('equal_lr', math.nan):.2g}"
        )
    sweep = results["width_sweep"]
    for setting, row in sweep["settings"].items():
        s = row["slopes"]
        lines.append(
            f"{setting}: slopes vs n: δ¹ {s['delta1']:+.2f}, δ² {s['delta2']:+.2f}, "
            f"δ²/δ¹ {s['delta2_over_delta1']:+.2f}; diverged seeds per width {row['diverged']} of {sweep['seeds']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder for toy_model.json and the PNGs")
    parser.add_argument("--smoke", action="store_true", help="tiny grid and widths, a few steps (seconds)")
    parser.add_argument("--steps", type=int, default=200, help="GD steps per heatmap cell")
    parser.add_argument("--width-steps", type=int, default=10, help="GD steps per width-sweep run (>= 2)")
    parser.add_argument("--seeds", type=int, default=8, help="problems per width in the sweep")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.width_steps < 2 or args.seeds < 1:
        parser.error(
            f"--steps={args.steps}, --width-steps={args.width_steps}, --seeds={args.seeds}: need --steps >= 1, "
            "--width-steps >= 2 (step 2 is measured) and --seeds >= 1."
        )
    results = run(args.out, args.smoke, args.steps, args.width_steps, args.seeds)
    print(summary(results))
    print(f"wrote {args.out}/toy_model.json and PNGs in {results['seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
