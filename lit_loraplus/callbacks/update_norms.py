"""Norms of the LoRA matrices, of their gradients and of the update each optimizer step applies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.optim import Optimizer
from typing_extensions import override

from lit_loraplus.callbacks._logging import (
    check_log_every,
    check_names,
    due,
    log_layer_table,
    log_metrics,
    setup_fit_logging,
)
from lit_loraplus.core.adapters import LoraAdapter, matrices, select_adapters, snapshot

STATS = ("update", "update_rel", "norm", "grad")
_ROLES = ("A", "B")


class UpdateNormMonitor(pl.Callback):
    r"""Log, per LoRA layer, how far each optimizer step moves A and B (LoRA+'s λ should show here).

    The update is measured, not predicted: A and B are copied right before ``optimizer.step()``
    (``on_before_optimizer_step``, which Lightning calls only on the batch that steps, so gradient
    accumulation is handled) and compared after it, whatever the optimizer. Copies are taken only
    on logged steps; all norms are computed on the device with ``torch._foreach_*`` ops and fetched
    with a single host synchronisation. Only rank 0 measures and logs under DDP.

    Logged metrics (``<layer>`` is the module path after ``base_model.model.``, e.g.
    ``bert.encoder.layer.0.attention.self.query``; ``<M>`` is ``A`` or ``B``; embedding LoRA logs
    ``lora_embedding_A/B`` as ``A``/``B``; DoRA layers log A and B, not the magnitude vector):

    - ``lora/update/<M>/<layer>``: ‖ΔM‖_F of the step (``update``), with ``lora/update/<M>/mean``,
      ``lora/update/<M>/max`` over layers and ``lora/update/B_over_A/mean`` = mean ‖ΔB‖ / mean ‖ΔA‖
      (absent while every ΔA is 0, e.g. the first step under PEFT's B = 0 init).
    - ``lora/update_rel/<M>/<layer>``: ‖ΔM‖_F / ‖M_{t−1}‖_F (``update_rel``), with ``mean``/``max``;
      absent for a layer whose matrix was 0 before the step.
    - ``lora/norm/<M>/<layer>``: ‖M_t‖_F after the step (``norm``), with ``mean``/``max``.
    - ``lora/grad/<M>/<layer>``: ‖∇M‖_F as the optimizer receives it, before gradient clipping
      (``grad``), with ``mean``/``max``.
    - At the end of training, on W&B only: ``lora/update/table``, a per-layer table of the last values.

    The step of each row is ``trainer.global_step`` after the measured step (1 for the first step);
    steps ``1, 1 + n, 1 + 2n, ...`` are logged for ``log_every_n_steps = n``.

    Args:
        log_every_n_steps: Measure every this many optimizer steps (the first step always).
        layers: Regular expression (``re.search``) over layer names; ``None`` monitors every
            active, trainable LoRA layer.
        stats: Which statistics to log, any of ``update``, ``update_rel``, ``norm``, ``grad``.

    Raises:
        ValueError: At construction, for ``log_every_n_steps < 1`` or an unknown statistic; at fit start,
            if ``layers`` matches no LoRA layer (the available names are listed).
        MisconfigurationException: At setup, if the trainer has no logger.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> from lightning.pytorch.loggers import CSVLogger
        >>> trainer = Trainer(logger=CSVLogger("logs"), callbacks=[UpdateNormMonitor(log_every_n_steps=50)])
    """

    def __init__(self, log_every_n_steps: int = 50, layers: str | None = None, stats: Sequence[str] = STATS) -> None:
        self.log_every_n_steps = check_log_every(log_every_n_steps, type(self).__name__)
        self.stats = check_names(stats, STATS, "stats", type(self).__name__)
        self.layers = layers
        self._adapters: list[LoraAdapter] = []
        self._pending = False
        self._before: list[Tensor] = []  # A's then B's, before the step (logged steps only)
        self._grads: Tensor | None = None
        self._last: dict[str, float] = {}

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        setup_fit_logging(trainer, stage, type(self).__name__)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Not in setup: a module may build its model in configure_model, which runs after setup.
        self._adapters = select_adapters(pl_module, self.layers, type(self).__name__)

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        if not due(trainer, self.log_every_n_steps):
            return
        self._pending = True
        params = matrices(self._adapters)
        if "update" in self.stats or "update_rel" in self.stats:
            self._before = snapshot(params)
        if "grad" in self.stats:
            grads = [p.grad.detach() if p.grad is not None else torch.zeros_like(p) for p in params]
            self._grads = torch.stack(torch._foreach_norm(grads))

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._pending:
            return
        self._pending = False
        params = [p.detach() for p in matrices(self._adapters)]
        rows: dict[str, Tensor] = {}
        if self._before:
            update = torch.stack(torch._foreach_norm(torch._foreach_sub(params, self._before)))
            if "update" in self.stats:
                rows["update"] = update
            if "update_rel" in self.stats:
                rows["update_rel"] = update / torch.stack(torch._foreach_norm(self._before))
        if "norm" in self.stats:
            rows["norm"] = torch.stack(torch._foreach_norm(params))
        if self._grads is not None:
            rows["grad"] = self._grads
        values = torch.stack([r.float() for r in rows.values()]).tolist()  # the one host sync
        self._before, self._grads = [], None
        metrics = self._metrics(dict(zip(rows, values, strict=True)))
        self._last = metrics
        log_metrics(trainer, metrics)

    def _metrics(self, rows: dict[str, list[float]]) -> dict[str, float]:
        """``{stat: [A of each layer..., B of each layer...]}`` -> metric keys (non-finite values dropped)."""
        n = len(self._adapters)
        metrics: dict[str, float] = {}
        means: dict[str, float] = {}
        for stat, values in rows.items():
            for r, role in enumerate(_ROLES):
                per_layer = values[r * n : (r + 1) * n]
                kept = [v for v in per_layer if math.isfinite(v)]
                for adapter, v in zip(self._adapters, per_layer, strict=True):
                    if math.isfinite(v):
                        metrics[f"lora/{stat}/{role}/{adapter.name}"] = v
                if kept:
                    means[f"{stat}/{role}"] = metrics[f"lora/{stat}/{role}/mean"] = sum(kept) / len(kept)
                    metrics[f"lora/{stat}/{role}/max"] = max(kept)
        if means.get("update/A", 0.0) > 0 and "update/B" in means:
            metrics["lora/update/B_over_A/mean"] = means["update/B"] / means["update/A"]
        return metrics

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        columns = [f"{stat}/{role}" for stat in self.stats for role in _ROLES]
        log_layer_table(trainer, "lora/update/table", [a.name for a in self._adapters], columns, self._last, "lora/")
