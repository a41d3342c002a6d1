"""Find LoRA+'s ratio λ (and η_A) with short trial runs, in the spirit of Lightning's ``Tuner.lr_find``.

    lit-loraplus find-ratio --config configs/quickstart.yaml --ratios 1,2,4,8,16,32 --steps 50
    lit-loraplus fit --config configs/quickstart.yaml --config runs/ratio_finder/ratio_finder.yaml

Every trial trains the same module from the same initial state on the same batches (the trainable
weights, buffers, module modes and random generators are restored before each trial) for ``steps``
optimizer steps at one (λ, η_A) of the grid, at constant rates. The score of a trial is the mean of
its smoothed training loss over the last quarter of its batches; the suggestion is the trial with
the lowest score that did not diverge. After the search the module is exactly as it was given.

``lr="auto"`` / ``ratio="auto"`` (:mod:`lit_loraplus.training.search`) is the in-``fit`` successor, and
both run on the same engine: the restored :class:`InitialState` and the halving loop
(:func:`~lit_loraplus.core.halving.successive_halving`), of which the finder's grid is a one-rung plan
(every cell trains ``steps`` steps and none is cut). What differs is the trial and its score: here every
trial is a full Lightning ``fit`` (so any callback, e.g. the feature-learning balance, runs in it) scored
on its smoothed training loss, which is what the finder's table and plot show; ``auto`` trains its cells
in its own loop and scores them on held-out batches.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lit_loraplus.callbacks import FeatureLearningMonitor
from lit_loraplus.core.halving import AllDiverged, successive_halving
from lit_loraplus.core.search import AUTO, Rung, lr_ladder
from lit_loraplus.tools.finder.result import RatioFinderResult, RatioTrial
from lit_loraplus.tools.finder.scoring import DEFAULT_RATIOS, smooth_losses, trial_score, validate_finder_settings
from lit_loraplus.tools.finder.trials import MemoryLogger, TrialRecorder, quiet_lightning, trial_trainer
from lit_loraplus.training.state import InitialState

BALANCE_KEY = "lora/feature/balance/mean"
# Trials compare constant rates: a warm-up or decay meant for the full run, squeezed into a few steps,
# would compare rates the run never trains at (or, with warm-up longer than the trial, none at all).
CONSTANT_SCHEDULE = {"lr_schedule": "constant", "warmup_steps": 0, "ratio_schedule": "constant"}
# Trainer arguments each trial sets itself (one device, no validation, no files).
FINDER_TRAINER_KEYS = frozenset(
    {"max_steps", "max_epochs", "devices", "logger", "callbacks", "enable_checkpointing", "limit_val_batches"}
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
        lrs: η_A values to try; None tries the module's own ``hparams.lr`` only (with ``lr="auto"``: the
            ladder ``lr="auto"`` searches, :func:`~lit_loraplus.core.search.lr_ladder`).
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
    own_lrs = lr_ladder() if module.hparams.lr == AUTO else [module.hparams.lr]
    grid = [(ratio, lr) for lr in (lrs or own_lrs) for ratio in ratios]
    constant = {k: v for k, v in CONSTANT_SCHEDULE.items() if k in module.hparams}
    initial = InitialState(module, ["lr", "ratio", *constant])
    fit_kwargs = {"datamodule" if isinstance(datamodule, L.LightningDataModule) else "train_dataloaders": datamodule}
    trials: list[RatioTrial] = []

    def train(cell: int, trial_steps: int) -> int:
        ratio, lr = grid[cell]
        initial.restore(module)
        module.hparams.update({"lr": lr, "ratio": ratio, **constant})
        recorder, logger = TrialRecorder(smoothing, divergence_threshold), MemoryLogger()
        extra = [FeatureLearningMonitor(log_every_n_steps=max(1, trial_steps // 5))] if feature_learning else []
        trainer = trial_trainer(trial_steps, [recorder, *extra, *callbacks], logger, trainer_kwargs)
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
                f"ratio finder [{cell + 1}/{len(grid)}] λ={ratio:g} η_A={lr:.3g}: {outcome} "
                f"({time.perf_counter() - start:.1f} s)",
                flush=True,
            )
        return trainer.global_step

    def score(cells: list[int]) -> list[float]:
        return [math.inf if trials[c].diverged else trials[c].score for c in cells]

    try:
        with quiet_lightning(), contextlib.suppress(AllDiverged):  # all diverged: no suggestion, as the result says
            successive_halving([(lr, ratio) for ratio, lr in grid], [Rung(len(grid), steps)], train, score)
    finally:
        initial.restore(module)
        module.trainer = initial.trainer
    return RatioFinderResult(trials=trials, steps=steps, smoothing=smoothing)
