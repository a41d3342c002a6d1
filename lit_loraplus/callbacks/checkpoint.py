"""``AdapterCheckpoint``: ``last.ckpt`` is always the latest state, and a preempted run stops with it saved.

Lightning's ``ModelCheckpoint`` writes ``last.ckpt`` only when a top-k file is written in the same
step, so after a validation that does not improve the monitor, ``last.ckpt`` — what
``--ckpt_path last`` resumes and ``lit-loraplus export`` exports — can hold any earlier step.
``AdapterCheckpoint`` keeps Lightning's top-k judging exactly as it is and refreshes ``last.ckpt``
on its own triggers, without touching the state that top-k judging reads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from torch.optim import Optimizer
from typing_extensions import override

from lit_loraplus.callbacks.preemption import DEFAULT_SIGNALS, Preempted, PreemptionSignals, signal_problems
from lit_loraplus.core.checks import int_at_least, positive, raise_problems


class AdapterCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` for runs that must not lose work: a fixed folder, a current ``last.ckpt``, preemption.

    - **Folder.** ``<default_root_dir>/checkpoints`` unless ``dirpath`` is set (Lightning's default sits under
      the logger's ``version_N``, which a new process's ``--ckpt_path last`` does not find).
    - **last.ckpt = the latest state.** Written at the end of every validation, at the end of ``fit``, and
      every ``last_every_n_steps`` optimizer steps and/or ``last_every_n_minutes`` minutes, whatever top-k
      decides. A finished run's ``last.ckpt`` holds its final step. The top-k files are judged exactly as
      by ``ModelCheckpoint`` (on the validation metrics, at validation time).
    - **Preemption.** On one of ``preempt_signals`` the run finishes the current optimizer step (gradient
      accumulation included), writes ``last.ckpt`` on every rank's behalf and exits with code 75
      (``lit_loraplus.callbacks.preemption.PREEMPTED_EXIT_CODE``); relaunching with ``--ckpt_path last``
      (or ``auto``) continues exactly. A signal during validation takes effect when it ends.
    - **Bounded loss.** After a SIGKILL or a power loss, at most the work since the last write is lost:
      one validation interval, or ``last_every_n_*`` if shorter.

    Checkpoints of a ``LoraPlusModule`` hold the trainable weights only, written atomically by ``lit-loraplus``.

    Args:
        dirpath: Checkpoint folder (default ``<trainer.default_root_dir>/checkpoints``).
        save_last: Keep ``last.ckpt`` current (needed by ``--ckpt_path last``, preemption and the extra triggers).
        last_every_n_steps: Also write ``last.ckpt`` every this many optimizer steps (None: off).
        last_every_n_minutes: Also write ``last.ckpt`` when this many minutes passed since the last write
            (None: off; decided on rank 0 and broadcast, so DDP ranks agree).
        preempt_signals: Signals that stop the run with its state saved (an empty list: off).
        **kwargs: Other ``ModelCheckpoint`` arguments (``monitor``, ``mode``, ``save_top_k``,
            ``every_n_train_steps``, ...).

    Raises:
        ValueError: At construction, for a bad trigger or signal, or preemption without ``save_last``.

    Example:
        ``trainer: {callbacks: [{class_path: lit_loraplus.callbacks.AdapterCheckpoint,
        init_args: {monitor: val/loss, save_top_k: 1, last_every_n_minutes: 30}}]}``
    """

    def __init__(
        self,
        dirpath: str | None = None,
        save_last: bool | None = True,
        last_every_n_steps: int | None = None,
        last_every_n_minutes: float | None = None,
        preempt_signals: Sequence[str] = DEFAULT_SIGNALS,
        **kwargs: Any,
    ) -> None:
        problems = int_at_least("last_every_n_steps", last_every_n_steps, 1, optional=True)
        problems += positive("last_every_n_minutes", last_every_n_minutes, optional=True)
        problems += signal_problems(preempt_signals)
        if save_last == "link":
            problems.append(
                "`save_last='link'` points last.ckpt at the newest top-k file, which can be older than the latest "
                "step; AdapterCheckpoint keeps last.ckpt current: use `save_last: true`."
            )
        elif not save_last and (preempt_signals or last_every_n_steps or last_every_n_minutes):
            problems.append(
                f"`save_last={save_last!r}` but preemption or a last.ckpt trigger is on: they write last.ckpt. Set "
                "`save_last: true`, or `preempt_signals: []` and no `last_every_n_*`."
            )
        raise_problems(problems, "AdapterCheckpoint settings")
        super().__init__(dirpath=dirpath, save_last=save_last, **kwargs)
        self.last_every_n_steps, self.last_every_n_minutes = last_every_n_steps, last_every_n_minutes
        self.signals = PreemptionSignals(preempt_signals)
        self._last_written_step = -1
        self._last_written_time = time.monotonic()
        self._stepped = False  # the latest training batch ended with an optimizer step

    @staticmethod
    def folder(callback: ModelCheckpoint, trainer: L.Trainer) -> str:
        """Where ``callback`` writes for ``trainer`` (its dirpath, else the fixed default)."""
        return callback.dirpath or os.path.join(trainer.default_root_dir, "checkpoints")

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.dirpath = self.folder(self, trainer)
        super().setup(trainer, pl_module, stage)

    def write_last(self, trainer: L.Trainer, force: bool = False) -> None:
        """Write ``last.ckpt`` now (all ranks call it), leaving the top-k bookkeeping as it was.

        Args:
            trainer: The fitting trainer.
            force: Write even if ``last.ckpt`` already holds this step (e.g. after a validation changed the best).
        """
        if not force and self._last_written_step == trainer.global_step and os.path.exists(self.last_model_path):
            return
        judged = self._last_global_step_saved  # top-k's "already saved at this step" guard must not see this write
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_global_step_saved = judged
        self._last_written_step, self._last_written_time = trainer.global_step, time.monotonic()

    def _fitting(self, trainer: L.Trainer) -> bool:
        return bool(self.save_last) and trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_written_time = time.monotonic()
        if not self.signals.names:
            return
        # Lightning registered its handlers just before; its SIGTERM one would stop mid-accumulation and exit 0.
        self.signals.install()
        if trainer.received_sigterm:  # a SIGTERM during the sanity check: take it over
            self.signals.received = "SIGTERM"
            trainer._signal_connector.received_sigterm = False  # else Lightning stops at the next batch end

    @override
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._stepped = False

    @override
    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer) -> None:
        self._stepped = True  # called only on the batch that steps (after accumulation)

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not (self._stepped and self._fitting(trainer)):
            return
        self._stop_if_signalled(trainer)
        every = self.last_every_n_steps
        due = every is not None and trainer.global_step % every == 0
        if self.last_every_n_minutes is not None:
            late = time.monotonic() - self._last_written_time >= 60 * self.last_every_n_minutes
            due = due or trainer.strategy.broadcast(late)  # rank 0's clock decides for every rank
        if due:
            self.write_last(trainer)

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)  # top-k exactly as ModelCheckpoint judges it
        if not self._fitting(trainer):
            return
        written_by_lightning = (
            self._last_global_step_saved == trainer.global_step and self._last_checkpoint_saved == self.last_model_path
        )
        if not written_by_lightning:  # also after a last_every_n_* write at this step: the best may have changed
            self.write_last(trainer, force=True)
        if self._stepped:
            self._stop_if_signalled(trainer)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._fitting(trainer):
            self.write_last(trainer)

    @override
    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().teardown(trainer, pl_module, stage)
        self.signals.uninstall()

    def _stop_if_signalled(self, trainer: L.Trainer) -> None:
        """At a step boundary: if any rank got a signal, save on all ranks and stop all with the same step."""
        if not self.signals.names:
            return
        received = self.signals.received is not None
        if not trainer.strategy.reduce_boolean_decision(received, all=False):
            return
        self.write_last(trainer)
        name = self.signals.received or "a signal on another rank"
        rank_zero_info(f"lit-loraplus: saved {self.last_model_path} at step {trainer.global_step} after {name}")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and trainer.is_global_zero:
                logger.experiment.mark_preempting()  # W&B shows the run as preempted, not crashed
        raise Preempted(name, trainer.global_step)
