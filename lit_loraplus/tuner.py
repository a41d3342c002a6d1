"""Find LoRA+'s ratio λ (and η_A) with short trial runs, in the spirit of Lightning's ``Tuner.lr_find``.

    lit-loraplus find-ratio --config configs/quickstart.yaml --ratios 1,2,4,8,16,32 --steps 50
    lit-loraplus fit --config configs/quickstart.yaml --config runs/ratio_finder/ratio_finder.yaml

Every trial trains the same module from the same initial state on the same batches (the trainable
weights, buffers, module modes and random generators are restored before each trial) for ``steps``
optimizer steps at one (λ, η_A) of the grid, at constant rates. The score of a trial is the mean of
its smoothed training loss over the last quarter of its batches; the suggestion is the trial with
the lowest score that did not diverge. After the search the module is exactly as it was given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from torch import Tensor, nn
from typing_extensions import override

from lit_loraplus.callbacks import FeatureLearningMonitor
from lit_loraplus.checkpoint import rng_state, set_rng_state
from lit_loraplus.optim import _positive
from lit_loraplus.precision import TRUE_HALF, AdapterFP32Precision

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_RATIOS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # 2^0..2^5: the paper's λ = 2^4 and the standard init's 2^1-2^3
MIN_STEPS = 4  # the score averages the last quarter of the batches: at least one smoothed value
BALANCE_KEY = "lora/feature/balance/mean"
# Trials compare constant rates: a warm-up or decay meant for the full run, squeezed into a few steps,
# would compare rates the run never trains at (or, with warm-up longer than the trial, none at all).
CONSTANT_SCHEDULE = {"lr_schedule": "constant", "warmup_steps": 0, "ratio_schedule": "constant"}
# Trainer arguments each trial sets itself (one device, no validation, no files).
FINDER_TRAINER_KEYS = frozenset(
    {"max_steps", "max_epochs", "devices", "logger", "callbacks", "enable_checkpointing", "limit_val_batches"}
)


def _grid_problems(name: str, values: Sequence[float] | None, example: str, meaning: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        return [f"`{name}={values!r}` must be a non-empty list of numbers, e.g. {name}={example}."]
    problems = []
    if bad := [v for v in values if not _positive(v)]:
        problems.append(f"`{name}` holds {bad}: every value must be a positive finite number ({meaning}).")
    if dups := sorted({v for v in values if _positive(v) and list(values).count(v) > 1}):
        problems.append(f"`{name}` repeats {dups}: list each value once (a repeat would only rerun a trial).")
    return problems


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
    problems = _grid_problems("ratios", ratios, "[1, 2, 4, 8, 16, 32]", "λ = η_B/η_A; 1 is plain LoRA")
    problems += _grid_problems("lrs", lrs, "[1e-4, 2e-4, 4e-4]", "η_A, the learning rate of A")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < MIN_STEPS:
        problems.append(
            f"`steps={steps!r}` is too short to compare trials: use an integer >= {MIN_STEPS} (50-100 is typical)."
        )
    if isinstance(smoothing, bool) or not isinstance(smoothing, int | float) or not 0 <= smoothing < 1:
        problems.append(f"`smoothing={smoothing!r}` must be in [0, 1) (0: no smoothing; 0.9 averages ~10 batches).")
    if not (_positive(divergence_threshold) and divergence_threshold > 1):
        problems.append(f"`divergence_threshold={divergence_threshold!r}` must be a number > 1 (default 4).")
    if problems:
        raise ValueError("Invalid ratio-finder settings: " + " ".join(problems))


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
            lines.append(f"note: the suggestion is on the grid's edge ({', '.join(edges)}): extend the grid there.")
        return "\n".join(lines)

    def edges(self) -> list[str]:
        """Where the suggestion lies on the border of the grid: ``"largest λ"``, ``"smallest η_A"``, ...

        A best value on the border may only be the best of those tried: extend the grid past it.

        Returns:
            One entry per axis with more than one value whose extreme the suggestion takes; empty otherwise.
        """
        if (best := self.best) is None:
            return []
        found = []
        for name, value, values in (
            ("λ", best.ratio, {t.ratio for t in self.trials}),
            ("η_A", best.lr, {t.lr for t in self.trials}),
        ):
            if len(values) > 1 and value in (min(values), max(values)):
                found.append(f"{'largest' if value == max(values) else 'smallest'} {name}")
        return found

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
                f"# Suggested by lit_loraplus.tuner.find_ratio ({len(self.trials)} trials of {self.steps} steps):\n"
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
        from lit_loraplus.plots import _figure, _finish

        fig, (curves, scores) = _figure(2)
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
        return _finish(fig, save_to)


class _TrialRecorder(Callback):
    """Record each batch's training loss; stop the trial when it diverges (as ``lr_find`` does)."""

    def __init__(self, smoothing: float, threshold: float) -> None:
        self.smoothing, self.threshold = smoothing, threshold
        self.losses: list[float] = []
        self.diverged = False

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        self.losses.append(float(loss) * trainer.accumulate_grad_batches)
        smoothed = smooth_losses(self.losses, self.smoothing)
        # Relative to the first loss, not (as lr_find) to the best: a loss near 0 must not make noise "diverge".
        if not math.isfinite(self.losses[-1]) or smoothed[-1] > self.threshold * smoothed[0]:
            self.diverged = True
            trainer.should_stop = True


class _MemoryLogger(Logger):
    """Keep logged metrics in memory: FeatureLearningMonitor needs a logger, the finder writes no files."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, float]] = []

    @property
    @override
    def name(self) -> str:
        return "ratio_finder"

    @property
    @override
    def version(self) -> int:
        return 0

    @override
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.rows.append(dict(metrics))

    @override
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def last(self, key: str) -> float | None:
        """The last value logged under ``key``, or None."""
        return next((row[key] for row in reversed(self.rows) if key in row), None)


def _mutable_tensors(module: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """What training may change: the trainable parameters and every buffer."""
    yield from ((n, p) for n, p in module.named_parameters() if p.requires_grad)
    yield from module.named_buffers()


class _InitialState:
    """A module's trainable weights, buffers, module modes and hyperparameters, and the random generators."""

    def __init__(self, module: L.LightningModule, keys: Sequence[str]) -> None:
        self.tensors = {name: t.detach().clone() for name, t in _mutable_tensors(module)}
        self.modes = {m: m.training for m in module.modules()}
        self.hparams = {k: module.hparams[k] for k in keys if k in module.hparams}
        self.trainer = module._trainer
        self.rng = rng_state()

    def restore(self, module: L.LightningModule) -> None:
        with torch.no_grad():
            for name, tensor in _mutable_tensors(module):
                tensor.copy_(self.tensors[name])
        for m, training in self.modes.items():
            m.training = training
        module.hparams.update(self.hparams)
        set_rng_state(self.rng)


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-fit info lines ("GPU available", "max_steps reached") during the trials."""
    lightning_logger = logging.getLogger("lightning.pytorch")
    level = lightning_logger.level
    lightning_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        lightning_logger.setLevel(level)


def _trial_trainer(
    steps: int, callbacks: list[Callback], logger: Logger, trainer_kwargs: Mapping[str, Any]
) -> L.Trainer:
    kwargs = dict(trainer_kwargs)
    if kwargs.get("precision") in TRUE_HALF:  # keep the LoRA matrices fp32, as the CLI does
        kwargs["plugins"] = [*(kwargs.get("plugins") or []), AdapterFP32Precision(kwargs.pop("precision"))]
    # Defaults the caller may change (e.g. a progress bar per trial).
    quiet = {"enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0}
    quiet["log_every_n_steps"] = 1  # the module logs its loss every step; avoids "smaller than the interval"
    return L.Trainer(
        max_steps=steps,
        max_epochs=-1,
        devices=1,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        limit_val_batches=0,
        **(quiet | kwargs),
    )


def find_ratio(
    module: L.LightningModule,
    datamodule: L.LightningDataModule | torch.utils.data.DataLoader,
    *,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    lrs: Sequence[float] | None = None,
    steps: int = 50,
    smoothing: float = 0.9,
    divergence_threshold: float = 4.0,
    feature_learning: bool = False,
    callbacks: Sequence[Callback] = (),
    trainer_kwargs: Mapping[str, Any] | None = None,
    verbose: bool = True,
) -> RatioFinderResult:
    """Try each (λ, η_A) of a grid in a short run from the same initial state and suggest the best.

    Each trial restores the module's trainable weights, buffers, module modes and the random
    generators (so every trial sees the same batches and dropout masks), sets ``hparams.ratio`` and
    ``hparams.lr`` (with a constant schedule: ``lr_schedule``, ``ratio_schedule`` constant, no
    warm-up), and trains ``steps`` optimizer steps with a fresh ``Trainer`` (no validation, no
    checkpoint, no file written). The model is built once (``configure_model``) and never
    re-wrapped. Afterwards the module's weights, modes, hyperparameters and trainer and the random
    generators are exactly as before the call.

    Scoring: the training loss of every batch is smoothed as in ``lr_find`` (:func:`smooth_losses`);
    a trial's score is the mean smoothed loss over its last quarter of batches (:func:`trial_score`).
    A trial with a NaN/inf loss, or whose smoothed loss rises above ``divergence_threshold`` × its
    first loss, is stopped, marked diverged and never suggested. With ``feature_learning`` the
    :class:`~lit_loraplus.callbacks.FeatureLearningMonitor` balance log(‖δ²‖/‖δ¹‖) at each trial's
    last probed step is reported as a second signal; it does not enter the choice.

    Args:
        module: A :class:`~lit_loraplus.LoraPlusModule`, or any LightningModule whose
            ``configure_optimizers`` reads ``hparams.lr`` and ``hparams.ratio``.
        datamodule: The data: a LightningDataModule or a training DataLoader.
        ratios: λ values to try.
        lrs: η_A values to try; None tries the module's own ``hparams.lr`` only.
        steps: Optimizer steps per trial (at least 4).
        smoothing: β of the exponential moving average of the loss, in [0, 1).
        divergence_threshold: Multiple of a trial's first loss above which its smoothed loss has diverged.
        feature_learning: Also measure the feature-learning balance (a probe forward every
            ``steps // 5`` steps).
        callbacks: More callbacks for every trial's trainer (e.g. to inspect each trial's start).
        trainer_kwargs: More ``Trainer`` arguments (``accelerator``, ``precision``,
            ``accumulate_grad_batches``, ``gradient_clip_val``, ...); a true half precision keeps the
            LoRA matrices in fp32 as the CLI does. Keys the finder sets itself are refused.
        verbose: Print one line per trial.

    Returns:
        The trials and the suggestion (``suggested_ratio``, ``suggested_lr``; None if all diverged).

    Raises:
        ValueError: For a bad grid or setting (before any training), listing every problem.
        TypeError: If the module has no ``lr``/``ratio`` hyperparameters.

    Example:
        >>> result = find_ratio(module, datamodule, ratios=[1, 4, 16], steps=50)  # doctest: +SKIP
        >>> print(result.table()); result.save("runs/ratio_finder")  # doctest: +SKIP
    """
    validate_finder_settings(ratios, lrs, steps, smoothing, divergence_threshold)
    trainer_kwargs = dict(trainer_kwargs or {})
    if reserved := sorted(set(trainer_kwargs) & FINDER_TRAINER_KEYS):
        raise ValueError(
            f"`trainer_kwargs` sets {reserved}, which the ratio finder sets itself for every trial: remove them "
            "(use `steps=` for the trial length and `callbacks=` for more callbacks)."
        )
    if not {"lr", "ratio"} <= set(module.hparams):
        raise TypeError(
            f"find_ratio needs a module whose hparams hold `lr` and `ratio` (a LoraPlusModule); "
            f"{type(module).__name__}.hparams has {sorted(module.hparams)}."
        )
    module.configure_model()  # build the model once, before the snapshot: trials must not re-wrap it
    grid = [(ratio, lr) for lr in (lrs or [module.hparams.lr]) for ratio in ratios]
    constant = {k: v for k, v in CONSTANT_SCHEDULE.items() if k in module.hparams}
    initial = _InitialState(module, ["lr", "ratio", *constant])
    fit_kwargs = {"datamodule" if isinstance(datamodule, L.LightningDataModule) else "train_dataloaders": datamodule}
    trials = []
    try:
        with _quiet_lightning():
            for i, (ratio, lr) in enumerate(grid, start=1):
                initial.restore(module)
                module.hparams.update({"lr": lr, "ratio": ratio, **constant})
                recorder, logger = _TrialRecorder(smoothing, divergence_threshold), _MemoryLogger()
                extra = [FeatureLearningMonitor(log_every_n_steps=max(1, steps // 5))] if feature_learning else []
                trainer = _trial_trainer(steps, [recorder, *extra, *callbacks], logger, trainer_kwargs)
                start = time.perf_counter()
                trainer.fit(module, **fit_kwargs)
                smoothed = smooth_losses(recorder.losses, smoothing)
                trial = RatioTrial(
                    ratio=float(ratio),
                    lr=float(lr),
                    losses=recorder.losses,
                    smoothed=smoothed,
                    score=trial_score(smoothed),
                    diverged=recorder.diverged,
                    balance=logger.last(BALANCE_KEY) if feature_learning else None,
                )
                trials.append(trial)
                if verbose:
                    outcome = "diverged" if trial.diverged else f"score {trial.score:.4f}"
                    print(
                        f"ratio finder [{i}/{len(grid)}] λ={ratio:g} η_A={lr:.3g}: {outcome} "
                        f"({time.perf_counter() - start:.1f} s)",
                        flush=True,
                    )
    finally:
        initial.restore(module)
        module.trainer = initial.trainer
    return RatioFinderResult(trials=trials, steps=steps, smoothing=smoothing)


def _float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers, e.g. 1,4,16") from None


def find_ratio_main(args: list[str]) -> None:
    """``lit-loraplus find-ratio``: run :func:`find_ratio` on the model and data of a ``fit`` configuration.

    Args:
        args: The finder's flags (``--ratios``, ``--lrs``, ``--steps``, ``--smoothing``,
            ``--feature_learning``, ``--out``); every other argument (``--config``, ``--model.*``,
            ``--data.*``, ``--trainer.*``) is read as by ``lit-loraplus fit``.
    """
    parser = argparse.ArgumentParser(
        prog="lit-loraplus find-ratio",
        allow_abbrev=False,
        description="Short trial runs over a grid of λ (and η_A) from the same initial state; suggests λ and η_A.",
        epilog="Other arguments (--config, --model.*, --data.*, --trainer.*) are those of `lit-loraplus fit`; "
        "from the trainer settings only accelerator, precision, accumulate_grad_batches and gradient clipping apply.",
    )
    parser.add_argument(
        "--ratios", type=_float_list, default=list(DEFAULT_RATIOS), help="λ values (default: %(default)s)"
    )
    parser.add_argument("--lrs", type=_float_list, default=None, help="η_A values (default: the config's model.lr)")
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps per trial (default: %(default)s)")
    parser.add_argument("--smoothing", type=float, default=0.9, help="β of the loss EMA (default: %(default)s)")
    parser.add_argument("--feature_learning", action="store_true", help="also report the δ²/δ¹ balance per trial")
    parser.add_argument("--out", default="runs/ratio_finder", help="output folder (default: %(default)s)")
    options, rest = parser.parse_known_args(args)

    from lit_loraplus.cli import LoraPlusCLI

    try:
        validate_finder_settings(options.ratios, options.lrs, options.steps, options.smoothing, 4.0)
        cli = LoraPlusCLI(args=rest, run=False)
    except ValueError as err:  # includes the CLI's ConfigError
        sys.exit(f"lit-loraplus find-ratio: error: {err}")
    trainer = cli.trainer
    settings = {
        "accelerator": trainer.accelerator,
        "precision": trainer.precision,
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
        "gradient_clip_val": trainer.gradient_clip_val,
        "gradient_clip_algorithm": trainer.gradient_clip_algorithm,
    }
    result = find_ratio(
        cli.model,
        cli.datamodule,
        ratios=options.ratios,
        lrs=options.lrs,
        steps=options.steps,
        smoothing=options.smoothing,
        feature_learning=options.feature_learning,
        trainer_kwargs=settings,
    )
    print(result.table())
    paths = result.save(options.out)
    try:
        result.plot(save_to=Path(options.out) / "ratio_finder.png")
        print(f"lit-loraplus find-ratio: plot in {Path(options.out) / 'ratio_finder.png'}")
    except ImportError as err:
        print(f"lit-loraplus find-ratio: no plot ({err})")
    if "yaml" not in paths:
        sys.exit(f"lit-loraplus find-ratio: every trial diverged (see {paths['json']}); try smaller λ or η_A.")
    print(
        f"lit-loraplus find-ratio: suggested λ = {result.suggested_ratio:g}, η_A = {result.suggested_lr:g}; "
        f"use them with `lit-loraplus fit --config <your config> --config {paths['yaml']}`"
    )
