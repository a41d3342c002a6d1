"""How much each LoRA step changes a layer's output through A (δ¹), through B (δ²) and jointly (δ³)."""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable, Mapping, Sized
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import move_data_to_device
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.data import IterableDataset
from typing_extensions import override

from lit_loraplus.callbacks._logging import (
    check_log_every,
    due,
    log_layer_table,
    log_metrics,
    setup_fit_logging,
)
from lit_loraplus.core.adapters import LoraAdapter, matrices, select_adapters, snapshot
from lit_loraplus.core.checks import int_at_least, one_of, raise_problems
from lit_loraplus.core.feature_terms import TERMS, balance, feature_terms, rms
from lit_loraplus.training.distributed import strategy_kind

ProbeSource = Literal["auto", "val", "train"]
ForwardFn = Callable[[pl.LightningModule, Any], Any]


DEFAULT_PROBE_BATCH_SIZE = 8  # probe samples when probe_batch_size is None (capped at the loader's batch)
PROBE_SEED = 0  # the probe's rows are a seeded draw: the same rows in every run and on every rank


def default_forward(pl_module: pl.LightningModule, batch: Any) -> Any:
    """``pl_module(**batch)`` for a dict batch (Hugging Face style), else ``pl_module(batch)``."""
    return pl_module(**batch) if isinstance(batch, Mapping) else pl_module(batch)


def _first(loaders: Any) -> Any:
    """The first loader of a list/tuple/dict of loaders, or the loader itself."""
    if isinstance(loaders, Mapping):
        return next(iter(loaders.values()))
    return loaders[0] if isinstance(loaders, list | tuple) else loaders


def _batch_len(batch: Any) -> int:
    sizes: list[int] = []
    apply_to_collection(batch, Tensor, lambda t: sizes.append(t.shape[0]) if t.ndim else None)
    return sizes[0] if sizes else 0


def _draws_rows(loader: Any) -> bool:
    """Whether the probe can draw its rows from ``loader``'s dataset: a sized, indexable (map-style) dataset,
    batched by ``batch_size`` and collated by ``collate_fn``."""
    dataset = getattr(loader, "dataset", None)
    indexable = isinstance(dataset, Sized) and hasattr(dataset, "__getitem__") and len(dataset) > 0
    plain = getattr(loader, "batch_size", None) is not None and getattr(loader, "collate_fn", None) is not None
    return indexable and plain and not isinstance(dataset, IterableDataset)


class _ProbeDone(Exception):
    """Raised by the last LoRA layer's pre-hook: the probe has every input it needs."""


class FeatureLearningMonitor(pl.Callback):
    r"""Log the LoRA+ paper's feature-learning terms (§4) on a fixed probe batch.

    For each LoRA layer with input Z, scaling s = α/r and one optimizer step t, the RMS over tokens
    and features of δ¹ = s·B_{t−1}ΔA_t Z (A's contribution), δ² = s·ΔB_t A_{t−1} Z (B's), δ³ =
    s·ΔB_tΔA_t Z and ΔZ_B = s·(B_tA_t − B_{t−1}A_{t−1})Z = δ¹+δ²+δ³, and the balance
    log(‖δ²‖/‖δ¹‖), which λ = η_B/η_A is meant to move toward 0.

    How it is measured: one probe batch (``probe_batch_size`` rows of the validation set, or of the
    training set) is taken once at the start of training, on the module's device: a seeded random draw
    of rows (the same in every run), collated by the loader, where the loader's dataset is indexable
    (a validation split kept in file order, e.g. sorted by label, would make its first batch
    unrepresentative), else the first rows of the loader's first batch. On a
    logged step, just before ``optimizer.step()``, A and B are copied and the probe runs once,
    without gradients, in eval mode (dropout, LoRA dropout included, off; each module's train/eval
    flag is restored after), while forward pre-hooks on the LoRA layers record their inputs Z.
    After the step the terms are computed from the copies and the new A and B. Z is therefore the
    input at t−1 from that single forward; it depends on earlier layers, which the step also
    changes, but §4 holds Z fixed, so the identity δ¹+δ²+δ³ = ΔZ_B is exact. Only rank 0 probes.

    Degenerate and special cases:

    - First step: under PEFT's init B = 0, so δ¹ = δ³ = 0; under the paper's Init[2] A = 0, so
      δ² = δ³ = 0. Where δ¹ or δ² is exactly 0 the layer's balance is not logged and the
      aggregates skip it (they are absent when no layer has a balance).
    - Embedding LoRA: the input is token ids, i.e. a one-hot Z, so A·Z is the column look-up
      ``lora_embedding_A[:, ids]`` ((r, V) in PEFT; B is (d, r)).
    - DoRA: the terms cover the low-rank product B·A before the magnitude rescaling.
    - Other LoRA layer types (convolutions) are not probed; padding tokens count like any token.
    - The probe forward stops once every probed layer has its input: what follows the last LoRA
      layer (a causal LM's vocabulary-wide logits) is never computed. Under FSDP/DeepSpeed it runs
      whole. A layer called more than once per forward (shared weights) is probed on its first call.

    Logged metrics (``<layer>`` as in :class:`UpdateNormMonitor`):

    - ``lora/feature/delta1/<layer>``, ``lora/feature/delta2/<layer>``, ``lora/feature/delta3/<layer>``,
      ``lora/feature/dZ/<layer>``: the RMS of each term, with ``lora/feature/<term>/mean`` over layers.
    - ``lora/feature/balance/<layer>``: log(RMS δ² / RMS δ¹), with ``lora/feature/balance/mean`` and
      ``lora/feature/balance/median``.
    - At the end of training, on W&B only: ``lora/feature/table``, a per-layer table of the last values.

    Steps are logged as in :class:`UpdateNormMonitor` (1, 1 + n, ...; step = ``trainer.global_step``).

    Args:
        log_every_n_steps: Probe every this many optimizer steps (the first step always).
        layers: Regular expression (``re.search``) over layer names; ``None`` probes every linear
            and embedding LoRA layer.
        probe_batch_size: Samples in the probe batch, at most the loader's batch size; ``None``
            (default) takes ``min(8, the loader's batch size)``, so the shared trainer config also
            serves micro-batch-4 runs.
        probe_source: ``val``, ``train``, or ``auto`` (validation if the trainer has a validation
            loader, else training).
        forward_fn: ``forward_fn(pl_module, batch)`` runs the model on the probe batch; default
            :func:`default_forward`.

    Raises:
        ValueError: At construction, for ``log_every_n_steps < 1``, ``probe_batch_size < 1`` or an
            unknown ``probe_source``; at fit start, if ``layers`` matches no probe-able LoRA layer; at
            the start of training, if the loader's batches hold fewer than an explicit
            ``probe_batch_size`` or ``probe_source='val'`` has no validation loader.
        MisconfigurationException: At setup, if the trainer has no logger.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> from lightning.pytorch.loggers import CSVLogger
        >>> monitor = FeatureLearningMonitor(log_every_n_steps=50, probe_batch_size=8)
        >>> trainer = Trainer(logger=CSVLogger("logs"), callbacks=[monitor])
    """

    def __init__(
        self,
        log_every_n_steps: int = 50,
        layers: str | None = None,
        probe_batch_size: int | None = None,
        probe_source: ProbeSource = "auto",
        forward_fn: ForwardFn = default_forward,
    ) -> None:
        name = type(self).__name__
        self.log_every_n_steps = check_log_every(log_every_n_steps, name)
        problems = int_at_least("probe_batch_size", probe_batch_size, 1, "None: min(8, the batch)", optional=True)
        problems += one_of("probe_source", probe_source, ("auto", "val", "train"))
        raise_problems(problems, f"{name} settings")
        self.layers, self.probe_batch_size, self.probe_source = layers, probe_batch_size, probe_source
        self.forward_fn = forward_fn
        self._adapters: list[LoraAdapter] = []
        self._probe: Any = None
        self._before: list[Tensor] = []  # A's then B's, before the step (logged steps only)
        self._z: dict[nn.Module, Tensor] = {}
        self._last: dict[str, float] = {}

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        setup_fit_logging(trainer, stage, type(self).__name__)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Not in setup: a module may build its model in configure_model, which runs after setup.
        adapters = select_adapters(pl_module, self.layers, type(self).__name__)
        self._adapters = [a for a in adapters if a.kind != "other"]
        if not self._adapters:
            raise ValueError(
                f"{type(self).__name__}(layers={self.layers!r}) selects only LoRA layers it cannot probe "
                f"(not linear or embedding): {[a.name for a in adapters]}."
            )

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        name, n = type(self).__name__, self.probe_batch_size
        val = trainer.val_dataloaders  # None without a validation loader (or with limit_val_batches=0)
        if self.probe_source == "val" and val is None:
            raise ValueError(f"{name}(probe_source='val'): the trainer has no validation dataloader. Use 'train'.")
        use_val = self.probe_source != "train" and val is not None
        source, loader = ("validation", _first(val)) if use_val else ("training", _first(trainer.train_dataloader))
        with torch.random.fork_rng(devices=[]):  # drawing the probe must not shift the training RNG
            draw = _draws_rows(loader)
            # A file-ordered split (e.g. sorted by label) makes its first batch unrepresentative, so where the
            # dataset is indexable the probe is a seeded draw of rows; otherwise, the first batch.
            first = None if draw else next(iter(loader))
            size = min(loader.batch_size, len(loader.dataset)) if draw else _batch_len(first)
            if n is None:
                n = min(DEFAULT_PROBE_BATCH_SIZE, size)
            elif size < n:
                raise ValueError(
                    f"{name}(probe_batch_size={n}) is larger than the {source} dataloader's batches ({size} "
                    f"samples). Use probe_batch_size <= {size} or a larger batch size."
                )
            if draw:
                rows = torch.randperm(len(loader.dataset), generator=torch.Generator().manual_seed(PROBE_SEED))
                batch = loader.collate_fn([loader.dataset[i] for i in rows[:n].tolist()])
            else:
                batch = apply_to_collection(first, Tensor, lambda t: t[:n] if t.ndim and t.shape[0] == size else t)
        self._probe = move_data_to_device(batch, pl_module.device)

    def _capture_inputs(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[nn.Module, Tensor]:
        """One no-grad, eval-mode probe forward; returns each LoRA layer's input (tokens/features).

        The forward stops as soon as every probed layer has its input (the rest of the network, e.g. a
        causal LM's vocabulary-wide logits, is never computed), except under a sharding strategy,
        whose per-module gather/release hooks must see a whole forward.
        """
        inputs: dict[nn.Module, Tensor] = {}
        targets = {a.module for a in self._adapters}
        stop_early = not strategy_kind(trainer.strategy)

        def record(module: nn.Module, args: tuple, kwargs: dict) -> None:
            inputs.setdefault(module, (args[0] if args else kwargs["x"]).detach())  # a shared layer: its first call
            if stop_early and len(inputs) == len(targets):
                raise _ProbeDone

        modes = {m: m.training for m in pl_module.modules()}
        handles = [m.register_forward_pre_hook(record, with_kwargs=True) for m in targets]
        try:
            pl_module.eval()
            with torch.no_grad(), trainer.precision_plugin.forward_context(), contextlib.suppress(_ProbeDone):
                self.forward_fn(pl_module, self._probe)
        finally:
            for handle in handles:
                handle.remove()
            for module, training in modes.items():
                module.training = training
        return inputs

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        if self._probe is None or not due(trainer, self.log_every_n_steps):
            return
        self._before = snapshot(matrices(self._adapters))
        self._z = self._capture_inputs(trainer, pl_module)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._before:
            return
        n = len(self._adapters)
        measured, values = [], []
        for i, a in enumerate(self._adapters):
            if a.module in self._z:  # a layer the probe never reached has no Z
                terms = feature_terms(
                    self._z[a.module], self._before[i], self._before[n + i], a.A, a.B, a.scaling, a.kind == "embedding"
                )
                measured.append(a)
                values.append(rms(terms))
        self._before, self._z = [], {}
        if measured:
            self._last = self._metrics(measured, torch.stack(values).tolist())  # the one host sync
            log_metrics(trainer, self._last)

    @staticmethod
    def _metrics(adapters: list[LoraAdapter], values: list[list[float]]) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for j, term in enumerate(TERMS):
            for a, row in zip(adapters, values, strict=True):
                metrics[f"lora/feature/{term}/{a.name}"] = row[j]
            metrics[f"lora/feature/{term}/mean"] = statistics.fmean(row[j] for row in values)
        balances = []
        for a, row in zip(adapters, values, strict=True):
            if (b := balance(row[0], row[1])) is not None:
                metrics[f"lora/feature/balance/{a.name}"] = b
                balances.append(b)
        if balances:
            metrics["lora/feature/balance/mean"] = statistics.fmean(balances)
            metrics["lora/feature/balance/median"] = statistics.median(balances)
        return metrics

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        names = [a.name for a in self._adapters]
        log_layer_table(trainer, "lora/feature/table", names, [*TERMS, "balance"], self._last, "lora/feature/")
