"""``lr="auto"`` / ``ratio="auto"`` inside ``fit``: successive halving on the run's own model, data and precision.

:func:`search` runs from ``LoraPlusModule.configure_optimizers``, the last moment before the run's
optimizer is built: the model is built, cast by the precision plugin, on its device and (DDP)
wrapped; a checkpoint being resumed has been read (and its choice restored, so a resumed run never
gets here); no step has been taken. The rungs and the choice are decided by the pure
:func:`~lit_loraplus.core.halving.successive_halving`; this module trains and scores the cells:

- Every cell starts from the run's initial state (trainable weights, buffers, module modes and the
  random generators, :class:`~lit_loraplus.training.state.InitialState`) with an optimizer of its
  own over the LoRA+ groups at constant rates (η_A, λ·η_A), and continues from where it stopped
  when it survives a rung (its weights kept on the CPU meanwhile).
- A step is the run's: ``accumulate_grad_batches`` batches, the precision plugin's forward context
  (a fresh gradient scaler for fp16), the trainer's gradient clipping. The module's own forward is
  called, not the DDP wrapper's, so ranks train their shards independently and never wait on
  each other; the scores are all-reduced (mean over ranks) before each cut, so every rank keeps the
  same cells, and rank 0's choice is broadcast.
- Afterwards the initial state is put back exactly; the caller builds the optimizer and schedules
  for the choice as for a fixed setting.

FSDP and DeepSpeed are refused: they build (DeepSpeed) or shard (FSDP) the optimizer with the model,
and trials that step other optimizers over sharded parameters are not something either supports.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch.optim import Optimizer

from lit_loraplus.core.halving import SearchOutcome, successive_halving
from lit_loraplus.core.optim import create_loraplus_optimizer
from lit_loraplus.core.search import AUTO, SearchSettings, default_cell, step_down
from lit_loraplus.core.settings import GroupSettings
from lit_loraplus.training.distributed import strategy_kind
from lit_loraplus.training.search_data import SearchData, constant_loss
from lit_loraplus.training.state import InitialState

SEARCHED = ("lr", "ratio")


def search_pending(hparams: Any) -> bool:
    """Whether ``lr`` or ``ratio`` is still ``"auto"`` (no search has chosen them, none was restored)."""
    return any(hparams.get(key) == AUTO for key in SEARCHED)


def search_settings(hparams: Any) -> SearchSettings:
    """The :class:`SearchSettings` of a LoraPlusModule's ``search_*`` hyperparameters."""
    return SearchSettings(**{k.removeprefix("search_"): v for k, v in hparams.items() if k.startswith("search_")})


def rows_seed(setting: int | None) -> int:
    """The seed of the search's shuffle of the training rows: ``search_seed`` where set, else the run's seed as
    Lightning's ``seed_everything`` recorded it (``PL_GLOBAL_SEED``), else 0, Lightning's own default seed.

    Args:
        setting: The ``search_seed`` setting (None: follow the run's seed).
    """
    return setting if setting is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))


def search_strategy_problems(strategy: Any) -> list[str]:
    """The problem with searching under ``strategy`` (FSDP, DeepSpeed), or none."""
    if kind := strategy_kind(strategy):
        return [
            f"`lr='auto'`/`ratio='auto'` is not supported with {kind}: the search trains its trials with optimizers "
            "of its own, which sharded or engine-built optimizers do not allow. Search on one device or with DDP "
            "(the choice is in the run's loraplus_search.json), then set `model.lr` and `model.ratio` to it."
        ]
    return []


def _move_state(optimizer: Optimizer, device: torch.device | str) -> None:
    """Move an optimizer's state tensors (Adam moments, step counts) to ``device``."""
    for state in optimizer.state.values():
        for key, value in state.items():
            if torch.is_tensor(value):
                state[key] = value.to(device)


@dataclass
class _Cell:
    optimizer: Optimizer
    scaler: torch.amp.GradScaler | None
    saved: InitialState | None = None
    steps: int = 0
    diverged: bool = False


class _Trials:
    """Trains and scores the cells of one search; :meth:`close` puts the module back as it was."""

    def __init__(self, module: L.LightningModule, trainer: L.Trainer, cells: list[tuple[float, float]], data: Any):
        self.module, self.trainer, self.cells, self.data = module, trainer, cells, data
        self.plugin = trainer.precision_plugin
        self.initial = InitialState(module)
        self.states: dict[int, _Cell] = {}
        self.current: int | None = None  # the cell whose weights the module holds

    def _batch(self, batch: Any) -> Any:
        """A batch as the training loop hands it to the module: precision input conversion, then the device."""
        batch = self.module.on_before_batch_transfer(self.plugin.convert_input(batch), 0)
        return self.trainer.strategy.batch_to_device(batch)

    def _enter(self, c: int) -> _Cell:
        """Put cell ``c``'s weights, buffers and generators into the module (its initial state on first use)."""
        if self.current == c:
            return self.states[c]
        if self.current is not None:  # park the cell the module holds: weights and optimizer state to the CPU
            held = self.states[self.current]
            held.saved = InitialState(self.module, device="cpu")
            _move_state(held.optimizer, "cpu")
        if c not in self.states:
            self.initial.restore(self.module)
            h = self.module.hparams
            lr, ratio = self.cells[c]
            settings = GroupSettings(
                **{k: h[k] for k in GroupSettings.field_names() if k in h} | {"lr": lr, "ratio": ratio}
            )
            optimizer = create_loraplus_optimizer(self.module.model, self.module.optimizer, settings)
            scaler = torch.amp.GradScaler(self.plugin.device) if getattr(self.plugin, "scaler", None) else None
            self.states[c] = _Cell(optimizer, scaler)
        else:
            self.states[c].saved.restore(self.module)
            _move_state(self.states[c].optimizer, self.trainer.strategy.root_device)
        self.current = c
        return self.states[c]

    def train(self, c: int, steps: int) -> int:
        """Train cell ``c`` at constant rates until it has taken ``steps`` optimizer steps; return the steps taken."""
        cell, before = self._enter(c), self.states[c].steps
        accumulate, clip = self.trainer.accumulate_grad_batches, self.trainer.gradient_clip_val
        self.module.model.train()  # as the run trains (LoraPlusModule.on_train_epoch_start)
        while cell.steps < steps and not cell.diverged:
            for micro in range(accumulate):
                with self.plugin.forward_context():
                    loss = self.module.compute_loss(self._batch(self.data.trial[cell.steps * accumulate + micro]))
                if not torch.isfinite(loss):
                    cell.diverged = True
                    break
                (cell.scaler.scale(loss / accumulate) if cell.scaler else loss / accumulate).backward()
            if not cell.diverged:
                if cell.scaler:
                    cell.scaler.unscale_(cell.optimizer)
                if clip:
                    self.plugin.clip_gradients(cell.optimizer, clip, self.trainer.gradient_clip_algorithm)
                if cell.scaler:
                    cell.scaler.step(cell.optimizer)
                    cell.scaler.update()
                else:
                    cell.optimizer.step()
                cell.steps += 1
            cell.optimizer.zero_grad(set_to_none=True)
        return cell.steps - before

    @torch.no_grad()
    def score(self, cells: list[int]) -> list[float]:
        """The mean held-out loss of each cell (eval mode), averaged over the ranks; inf for a diverged cell."""
        local = []
        for c in cells:
            if self.states[c].diverged:
                local.append(math.inf)
                continue
            self._enter(c)
            self.module.model.eval()
            losses = []
            for batch in self.data.score:
                with self.plugin.forward_context():
                    losses.append(float(self.module.compute_loss(self._batch(batch))))
            local.append(sum(losses) / len(losses))
        values = torch.tensor(local, dtype=torch.float64, device=self.trainer.strategy.root_device)
        return self.trainer.strategy.reduce(values, reduce_op="mean").tolist()

    def close(self) -> None:
        """Restore the run's initial state (weights, buffers, modes, generators) and drop every cell."""
        self.initial.restore(self.module)
        for param in self.module.parameters():
            param.grad = None
        self.states.clear()


def search(module: L.LightningModule, trainer: L.Trainer, total_steps: int) -> SearchOutcome:
    """Choose the ``"auto"`` ones of ``lr``/``ratio`` by successive halving; the module is left as it was given.

    Args:
        module: A built LoraPlusModule whose ``lr`` and/or ``ratio`` is ``"auto"``, inside ``fit``.
        trainer: Its trainer (strategy set up, optimizer not built yet).
        total_steps: Optimizer steps of the run (the budget is a fraction of them).

    Returns:
        The choice (``lr``, ``ratio``), every trial and the steps spent; the same on every rank.

    Raises:
        ValueError: Before any trial: for FSDP/DeepSpeed, a budget too small for the cells, or data the search
            cannot index.
        RuntimeError: If every cell of the last rung diverged.
    """
    if problems := search_strategy_problems(trainer.strategy):
        raise ValueError(" ".join(problems))
    h = module.hparams
    settings = search_settings(h)
    cells = settings.grid(h.lr, h.ratio)
    rungs = settings.plan(len(cells), total_steps)
    seed = trainer.strategy.broadcast(rows_seed(settings.seed), src=0)  # every rank shuffles the rows alike
    data, scored_on = None, "nothing (one cell)"
    if rungs:
        data = SearchData(
            trainer,
            rungs[-1].steps * trainer.accumulate_grad_batches,
            settings.score_batches,
            settings.score_on,
            seed,
        )
        scored_on = data.scored_on
    trials = _Trials(module, trainer, cells, data)
    try:
        every, best = successive_halving(cells, rungs, trials.train, trials.score)
    finally:
        trials.close()
    lr, ratio = trainer.strategy.broadcast((best.lr, best.ratio), src=0)
    prior = constant_loss(data.score, h.task, h.num_labels) if data else None
    if prior is not None:  # each rank's own scoring rows, averaged over the ranks as the scores are
        value = torch.tensor(prior, dtype=torch.float64, device=trainer.strategy.root_device)
        prior = float(trainer.strategy.reduce(value, reduce_op="mean"))
    outcome = SearchOutcome(
        requested={key: h[key] for key in SEARCHED},
        lr=lr,
        ratio=ratio,
        best=best,
        trials=every,
        rungs=rungs,
        budget_steps=settings.budget_steps(total_steps),
        total_steps=total_steps,
        lr_factor=settings.lr_factor,
        scored_on=scored_on,
        score_batches=len(data.score) if data else 0,
        constant_score=prior,
        seed=seed,
    )
    if settings.fallback and outcome.learned_only_the_prior:  # the same on every rank: scores and prior are reduced
        (outcome.lr, outcome.ratio), outcome.fell_back = default_cell(cells), True
        return outcome
    if settings.edge == "step_down" and (below := step_down(cells, (lr, ratio))) != (lr, ratio):
        (outcome.lr, outcome.ratio), outcome.stepped_down = below, True
    outcome.lr *= settings.lr_factor if h.lr == AUTO else 1.0
    return outcome
