"""What the ratio finder found: every trial, the suggested λ and η_A, and their table, files and plot."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lit_loraplus.core.search import search_ends
from lit_loraplus.tools.plots import finish_figure, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class RatioTrial:
    """One (λ, η_A) trial of the ratio finder.

    Attributes:
        ratio: λ.
        lr: η_A.
        losses: Training loss of each batch (undoing Lightning's division by ``accumulate_grad_batches``).
        smoothed: :func:`smooth_losses` of ``losses``.
        score: :func:`trial_score` of ``smoothed`` (lower is better).
        diverged: A loss was NaN/inf or the smoothed loss rose above ``divergence_threshold`` × its first loss;
            the trial stopped there and is never suggested.
        balance: Mean feature-learning balance log(‖δ²‖/‖δ¹‖) at the trial's last probed step
            (``feature_learning=True``; None otherwise or when no layer had both terms non-zero).
    """

    ratio: float
    lr: float
    losses: list[float]
    smoothed: list[float]
    score: float
    diverged: bool
    balance: float | None = None


def _json_number(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


@dataclass
class RatioFinderResult:
    """What :func:`find_ratio` found: every trial, and the suggested λ and η_A.

    Attributes:
        trials: The trials, in the order they ran (for each η_A, every λ).
        steps: Optimizer steps per trial.
        smoothing: β of the loss smoothing.
    """

    trials: list[RatioTrial]
    steps: int
    smoothing: float

    @property
    def best(self) -> RatioTrial | None:
        """The trial with the lowest score among those that did not diverge (the first one on a tie)."""
        candidates = [t for t in self.trials if not t.diverged and math.isfinite(t.score)]
        return min(candidates, key=lambda t: t.score) if candidates else None

    @property
    def suggested_ratio(self) -> float | None:
        """λ of :attr:`best` (None when every trial diverged)."""
        return None if self.best is None else self.best.ratio

    @property
    def suggested_lr(self) -> float | None:
        """η_A of :attr:`best` (None when every trial diverged)."""
        return None if self.best is None else self.best.lr

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: settings, suggestion and every trial (non-finite numbers become None)."""
        trials = []
        for trial in self.trials:
            row = asdict(trial)
            row["losses"] = [_json_number(v) for v in trial.losses]
            row["smoothed"] = [_json_number(v) for v in trial.smoothed]
            row["score"] = _json_number(trial.score)
            trials.append(row)
        return {
            "suggested_ratio": self.suggested_ratio,
            "suggested_lr": self.suggested_lr,
            "steps": self.steps,
            "smoothing": self.smoothing,
            "score": "mean smoothed training loss over the last quarter of each trial's batches",
            "trials": trials,
        }

    def table(self) -> str:
        """The trials as a text table (λ, η_A, score, last smoothed loss, balance, status)."""
        lines = [f"{'λ':>8} {'η_A':>10} {'score':>10} {'last loss':>10} {'balance':>8}  status"]
        best = self.best
        for t in self.trials:
            last = t.smoothed[-1] if t.smoothed else math.nan
            balance = "-" if t.balance is None else f"{t.balance:.2f}"
            status = "diverged" if t.diverged else "<- suggested" if t is best else ""
            lines.append(f"{t.ratio:>8g} {t.lr:>10.3g} {t.score:>10.4f} {last:>10.4f} {balance:>8}  {status}")
        if edges := self.edges():
            caution = (
                "; short trials favour larger values than a whole run does, so compare a largest value with the one "
                "below it in full runs"
                if any(e.startswith("largest") for e in edges)
                else ""
            )
            where = ", ".join(edges)
            lines.append(f"note: the suggestion is on the grid's edge ({where}): extend the grid there{caution}.")
        return "\n".join(lines)

    def edges(self) -> list[str]:
        """Where the suggestion lies on the border of the grid: ``"largest λ"``, ``"smallest η_A"``, ...

        A best value on the border may only be the best of those tried: extend the grid past it. The border is
        :func:`~lit_loraplus.core.search.search_ends`'s, as for ``lr="auto"`` / ``ratio="auto"``.

        Returns:
            One entry per axis with 3 values or more whose extreme the suggestion takes (λ = 1 is no border);
            empty otherwise.
        """
        if (best := self.best) is None:
            return []
        ends = search_ends([(t.lr, t.ratio) for t in self.trials], (best.lr, best.ratio))
        return [f"{end} {'η_A' if key == 'lr' else 'λ'}" for key, end in ends.items()]

    def save(self, directory: str | Path) -> dict[str, Path]:
        """Write ``ratio_finder.json`` and, when there is a suggestion, ``ratio_finder.yaml``.

        The YAML holds ``model: {lr: η_A, ratio: λ}``, to be given as a further ``--config`` to
        ``lit-loraplus fit``.

        Args:
            directory: Output folder (created).

        Returns:
            ``{"json": path}`` plus ``"yaml"`` when a suggestion was written.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"json": directory / "ratio_finder.json"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        if self.best is not None:
            paths["yaml"] = directory / "ratio_finder.yaml"
            header = (
                f"# Suggested by lit_loraplus.find_ratio ({len(self.trials)} trials of {self.steps} steps):\n"
                f"#   lit-loraplus fit --config <your config> --config {paths['yaml']}\n"
            )
            body = yaml.safe_dump({"model": {"lr": float(self.best.lr), "ratio": float(self.best.ratio)}})
            paths["yaml"].write_text(header + body)
        return paths

    def plot(self, save_to: str | Path | None = None) -> Figure:
        """Smoothed loss of every trial (top) and score against λ for each η_A (bottom, suggestion starred).

        Args:
            save_to: Optional PNG path.

        Returns:
            The matplotlib figure (built without pyplot; needs ``pip install 'lit-loraplus[plots]'``).
        """
        fig, (curves, scores) = new_figure(2)
        for t in self.trials:
            style = ":" if t.diverged else "-"
            curves.plot(range(1, len(t.smoothed) + 1), t.smoothed, style, label=f"λ={t.ratio:g}, η_A={t.lr:.2g}")
        kept = [v for t in self.trials if not t.diverged for v in t.smoothed if math.isfinite(v)]
        if kept:  # diverged curves would flatten the others
            pad = 0.05 * (max(kept) - min(kept)) or 0.05 * abs(max(kept)) or 0.05
            curves.set_ylim(min(kept) - pad, max(kept) + pad)
        curves.set(xlabel="training batch", ylabel="smoothed loss", title="Ratio finder: smoothed training loss")
        curves.legend(fontsize="x-small", ncol=2)
        for i, lr in enumerate(dict.fromkeys(t.lr for t in self.trials)):
            points = [(t.ratio, t.score) for t in self.trials if t.lr == lr and not t.diverged]
            if points:
                scores.plot(*zip(*points, strict=True), "o-", color=f"C{i % 10}", label=f"η_A={lr:.2g}")
        if (best := self.best) is not None:
            scores.plot([best.ratio], [best.score], "*", color="black", markersize=14, label="suggested")
        scores.set_xscale("log", base=2)
        scores.set(xlabel="λ = η_B/η_A", ylabel="score (mean smoothed loss, last quarter)", title="Score per trial")
        scores.legend(fontsize="small")
        return finish_figure(fig, save_to)
