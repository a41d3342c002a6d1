"""LoraPlusModule: fine-tune any Hugging Face transformers model with PEFT LoRA and LoRA+ groups.

The module only wires: the model comes from :mod:`lit_loraplus.core.model`, the optimizer groups and
schedules from :mod:`lit_loraplus.core.optim`, the metrics from :mod:`lit_loraplus.evaluation.metrics`,
the checkpoint trimming from :mod:`lit_loraplus.training.checkpoint`, the ``lr``/``ratio="auto"``
search from :mod:`lit_loraplus.training.search`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from peft import PeftModel, prepare_model_for_kbit_training
from torch import Tensor, nn
from typing_extensions import override

from lit_loraplus.core.adapters import regression_head_bias
from lit_loraplus.core.checks import raise_problems
from lit_loraplus.core.model import (
    Init,
    Task,
    apply_lora,
    check_model_task,
    enable_gradient_checkpointing,
    init_loraplus_,
    load_pretrained,
)
from lit_loraplus.core.optim import configure_loraplus_optimizers
from lit_loraplus.core.quantization import Quantization, quantization_kwargs
from lit_loraplus.core.rng import rng_state, set_rng_state
from lit_loraplus.core.schedule import LRScheduleName, RatioScheduleName
from lit_loraplus.core.search import Auto, Edge, ScoreOn
from lit_loraplus.core.settings import DEFAULT_LR, DEFAULT_RATIO, GroupSettings
from lit_loraplus.evaluation.metrics import KeyedMetric, build_metrics, default_metrics, update_metrics
from lit_loraplus.training import checkpoint as ckpt
from lit_loraplus.training.distributed import (
    check_groups_across_ranks,
    describe_groups,
    strategy_kind,
    trainable_sizes,
)
from lit_loraplus.training.export import save_adapter
from lit_loraplus.training.precision import warn_half_precision_adapters
from lit_loraplus.training.predict import predict_rows
from lit_loraplus.training.search import search, search_pending, search_strategy_problems
from lit_loraplus.training.search_data import training_label_mean
from lit_loraplus.training.search_report import report_search
from lit_loraplus.training.settings import HeadBias, module_problems

_MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids", "labels")


class LoraPlusModule(L.LightningModule):
    """Fine-tune a transformers model with LoRA adapters and LoRA+ learning rates (η_B = λ·η_A).

    Args:
        model: Hub id (``roberta-base``) or local directory; from Python also an ``nn.Module`` or a
            ready ``PeftModel`` (then the LoRA settings below are not used).
        task: ``sequence_classification`` or ``causal_lm``.
        num_labels: Classes for sequence classification (1 = regression, e.g. STS-B). Linked from
            the data module by the CLI.
        id2label: Label names stored in the model config (linked from the data module).
        metrics: Validation/test metrics (see :mod:`lit_loraplus.metrics`); default by task.
        r: LoRA rank.
        alpha: LoRA α; the update is scaled by α/r (α/√r with ``use_rslora``).
        dropout: LoRA dropout on the adapter input.
        target_modules: Module names to adapt (``["query", "value"]``); None = PEFT's default for
            the architecture; ``"all-linear"`` = every linear layer but the head.
        use_rslora: Rank-stabilised scaling α/√r.
        use_dora: DoRA (weight-decomposed LoRA); magnitudes train at ``magnitude_lr``.
        bias: ``none``, ``all`` or ``lora_only`` (which biases train).
        modules_to_save: Modules trained fully (the classifier head is added automatically).
        init: ``standard`` (PEFT: A random, B = 0) or ``loraplus`` (the paper's Init[2]: B
            Kaiming-uniform, A = 0; embedding adapters unchanged; see ``init_loraplus_``).
        adapter: A PEFT adapter directory to start from (its own r/α/targets apply).
        lr: η, the peak learning rate of A; ``"auto"`` chooses it at the start of ``fit`` (see below).
            The default 1e-3 goes with the default λ = 4: a pair, chosen together from the evidence
            benchmark (docs/benchmarks/evidence.md); raise one and lower the other.
        ratio: λ = η_B/η_A; 1 is plain LoRA. The paper's choice is 16 (2^4) under its init; under the
            standard init it found 2^2-2^3 best on RoBERTa/GLUE and 2^1-2^2 on Llama-7b/MNLI. ``"auto"``
            chooses it at the start of ``fit``.
        ratio_schedule: ``constant`` or a ``linear``/``cosine`` ramp of λ from ``initial_ratio``.
        ratio_warmup_steps: Length of the λ ramp.
        initial_ratio: λ at the start of the ramp.
        lr_schedule: ``constant``, ``linear`` (paper, GLUE) or ``cosine``.
        warmup_steps: Linear learning-rate warm-up steps.
        min_lr_ratio: Final learning rate as a fraction of each group's peak.
        weight_decay: Decoupled weight decay (never on biases, norms, DoRA magnitudes, token deltas).
        embedding_lr: Learning rate of embedding LoRA A and B (default ``lr``).
        head_lr: Learning rate of ``modules_to_save`` copies, e.g. the head (default ``lr``).
        magnitude_lr: Learning rate of DoRA magnitudes (default ``lr``).
        gradient_checkpointing: Activation checkpointing (``use_reentrant=False``).
        optimizer: Optimizer callable given the LoRA+ groups, e.g. AdamW with ``betas``/``eps``.
            Its ``lr``/``weight_decay`` must stay unset: use ``lr``/``weight_decay`` above.
        max_new_tokens: Tokens generated per prompt by ``predict`` for causal LMs.
        model_kwargs: Extra ``from_pretrained`` arguments (``dtype``, ``gguf_file``, ...).
        quantization: QLoRA: load the base model in ``4bit`` (NF4) or ``8bit`` through bitsandbytes
            (CUDA only) and prepare it with ``peft.prepare_model_for_kbit_training``; groups unchanged.
        compile: Compile the PEFT model's forward with ``torch.compile`` (``nn.Module.compile``: in
            place, so parameter and checkpoint names do not change): ``True``, or a dict of
            ``torch.compile`` arguments (``{"mode": "max-autotune", "dynamic": true}``). Off by
            default (see the README's fast paths for what it measured). Not with FSDP or DeepSpeed
            (refused at setup: the model would be compiled before the strategy shards it).
        search_budget: With ``lr`` or ``ratio`` ``"auto"``: the extra optimizer steps the search may
            take, a fraction of the run's (float, 0.1 = 10 %) or a number of steps (int). Too small
            a budget for the cells is refused before any step, saying what the search needs.
        search_lrs: The η_A values ``lr="auto"`` tries (default: the 10^(k/3) ladder 2.15e-4 to 4.64e-3).
        search_ratios: The λ values ``ratio="auto"`` tries (default: 1, 2, 4, 8, 16, 32).
        search_lr_factor: Multiplies the η_A the search picks, to correct the short-horizon bias
            (short trials favour larger rates than a full run's best). 1.0 corrects nothing.
        search_score_on: What scores the search's cells: ``"auto"`` (the validation data where its batches
            carry labels, else training rows held out from every trial), ``"validation"`` or ``"train"``
            (keeps the validation data unseen by the choice, e.g. when it is the split you report).
        search_fallback: When the search's best cell scores no better than predicting the scoring rows' label
            balance (or mean) for every row, train with the searched values nearest the defaults (η_A 1e-3,
            λ 4: the defaults themselves with the default lists) instead of that cell, and warn. False keeps
            the best cell (and still warns).
        search_edge: Where the search's best cell has the largest η_A or λ it searched (3 values or more),
            ``"step_down"`` (the default) trains with the next value below on that setting: such a win beat
            nothing larger, and short trials favour larger rates than the whole run's best. ``"keep"`` trains
            with the best cell. Either way the run warns and records the end (``at_edge``).
        search_seed: The seed of the search's shuffle of the training rows (the rows its trials train on,
            and without validation rows the rows that score them). None (the default): the run's seed
            (``seed_everything``; 0 where none was set), so each seed draws its own rows. A value fixes
            the rows across seeds; try two or three to see how much the choice depends on them.
        search_score_batches: Held-out batches that score every cell after each rung (forward passes only,
            outside the budget of optimizer steps). More rows give a steadier ranking for more evaluation
            time. Held-out training rows are capped at half the training data.
        search_min_steps: The shortest first rung (optimizer steps for every cell) the search accepts; a budget
            that pays for less is refused. 2 by default; 1 halves the least budget a search needs, for short
            runs (see the ratio guide for what it measured).
        head_bias: Where a regression head (``num_labels=1``) starts its output bias: ``"model"`` (as the model
            builds it; 0 for a head transformers adds) or ``"label_mean"``: the mean of the training rows' labels,
            set at the start of the first ``fit`` of a module that loaded no checkpoint, before any search or
            step. The first steps (and an ``lr="auto"`` search's short trials) then go into fitting the rows rather
            than moving a head's output from 0 to the labels' scale. Refused for classification, causal LMs and
            with ``adapter`` (its head is trained already).

    ``"auto"``: before the first optimizer step of ``fit``, every (η_A, λ) cell trains a few steps from
    the run's initial state on the run's own training data at constant rates, is scored on held-out
    batches (the validation data, else held-out training rows: ``search_score_on``), and the better half continues twice
    as long, until two are left (successive halving, :mod:`lit_loraplus.training.search`). The
    module is then restored exactly (weights, buffers, modes, random generators; the training loader
    is never touched) and trains with the choice, with its optimizer and schedules built as for
    fixed values. The choice replaces ``"auto"`` in ``hparams`` and is saved in checkpoints, so a
    resumed run (``--ckpt_path``) takes it from there and never searches again; the record of every
    trial is logged, written to ``loraplus_search.json`` and exported in ``loraplus.json``.

    Raises:
        ValueError: For bad settings, all listed at once, before any model is loaded.
    """

    def __init__(
        self,
        model: str | nn.Module,
        task: Task = "sequence_classification",
        num_labels: int | None = None,
        id2label: dict[int, str] | None = None,
        metrics: list[str] | None = None,
        r: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.05,
        target_modules: list[str] | str | None = None,
        use_rslora: bool = False,
        use_dora: bool = False,
        bias: Literal["none", "all", "lora_only"] = "none",
        modules_to_save: list[str] | None = None,
        init: Init = "standard",
        adapter: str | None = None,
        lr: float | Auto = DEFAULT_LR,
        ratio: float | Auto = DEFAULT_RATIO,
        ratio_schedule: RatioScheduleName = "constant",
        ratio_warmup_steps: int = 0,
        initial_ratio: float = 1.0,
        lr_schedule: LRScheduleName = "linear",
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
        weight_decay: float = 0.0,
        embedding_lr: float | None = None,
        head_lr: float | None = None,
        magnitude_lr: float | None = None,
        gradient_checkpointing: bool = False,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        max_new_tokens: int = 64,
        model_kwargs: dict[str, Any] | None = None,
        quantization: Quantization | None = None,
        compile: bool | dict[str, Any] = False,
        search_budget: int | float = 0.1,
        search_lrs: list[float] | None = None,
        search_ratios: list[float] | None = None,
        search_lr_factor: float = 1.0,
        search_score_on: ScoreOn = "auto",
        search_fallback: bool = True,
        search_edge: Edge = "step_down",
        search_seed: int | None = None,
        search_score_batches: int = 4,
        search_min_steps: int = 2,
        head_bias: HeadBias = "model",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "optimizer"])
        raise_problems(module_problems(self.hparams, optimizer), "LoraPlusModule settings")
        # Only init arguments may enter hparams (LightningCLI re-parses a checkpoint's hparams). A module
        # instance cannot be stored: load_from_checkpoint(..., model=instance) supplies it again.
        if isinstance(model, str):
            self.hparams["model"] = model
        self.optimizer = optimizer
        self.strict_loading = False  # checkpoints hold trainable weights only; see on_load_checkpoint
        self.model: PeftModel | None = None
        self._source = model if isinstance(model, str) else None
        self._rng_to_restore: dict[str, Any] | None = None
        self.search_record: dict[str, Any] | None = None  # what lr/ratio="auto" searched (SearchOutcome.to_dict)
        self._head_started = False  # head_bias="label_mean" applied, or weights loaded from a checkpoint
        if isinstance(model, nn.Module):
            self.model = self._wrap(model)

    def _lora_config(self) -> dict[str, Any]:
        h = self.hparams
        return {
            "r": h.r,
            "lora_alpha": h.alpha,
            "lora_dropout": h.dropout,
            "target_modules": h.target_modules,
            "use_rslora": h.use_rslora,
            "use_dora": h.use_dora,
            "bias": h.bias,
            "modules_to_save": h.modules_to_save,
        }

    def _wrap(self, base: nn.Module) -> PeftModel:
        """Check the base model, then add (or load) the adapter and initialise it."""
        h = self.hparams
        check_model_task(base, h.task)
        if h.task == "sequence_classification" and h.num_labels is not None:
            have = getattr(getattr(base, "config", None), "num_labels", h.num_labels)
            if have != h.num_labels:
                raise ValueError(
                    f"`num_labels={h.num_labels}` but the model's head has {have} outputs: "
                    "make them agree (the data module decides num_labels)."
                )
        if h.gradient_checkpointing:
            enable_gradient_checkpointing(base)
        if isinstance(base, PeftModel):
            return base.train()
        if h.adapter is not None:
            return PeftModel.from_pretrained(base, h.adapter, is_trainable=True).train()
        peft_model = apply_lora(base, h.task, self._lora_config())
        if h.init == "loraplus":
            init_loraplus_(peft_model)
        return peft_model.train()

    @override
    def configure_model(self) -> None:
        """Load and wrap the model (once), so strategies can build it under their own context."""
        if self.model is None:
            h = self.hparams
            kwargs = dict(h.model_kwargs or {})
            if h.get("quantization"):
                kwargs |= quantization_kwargs(h.quantization)
            base = load_pretrained(self._source, h.task, h.num_labels, h.id2label, **kwargs)
            if h.get("quantization"):
                base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)  # _wrap enables it
            self.model = self._wrap(base)
        if self.hparams.get("head_bias") == "label_mean" and not self._head_started and self._fitting():
            self._start_head_at_label_mean()
        if self.hparams.get("compile") and getattr(self.model, "_compiled_call_impl", None) is None:
            self._compile()
        if not hasattr(self, "_sizes"):  # before any strategy wraps or shards the model (see distributed.py)
            self._sizes = trainable_sizes(self.model)
        if not hasattr(self, "metric_sets"):
            self.metric_sets = nn.ModuleDict()
        if self._trainer is not None and search_pending(self.hparams):
            raise_problems(search_strategy_problems(self.trainer.strategy), "LoraPlusModule settings")

    def _compile(self) -> None:
        strategy = self.trainer.strategy if self._trainer is not None else None
        if strategy_kind(strategy):
            raise ValueError(
                f"`compile=True` is not supported with {type(strategy).__name__}: the model would be compiled "
                "before the strategy shards it. Use DDP or a single device, or set `model.compile: false`."
            )
        options = self.hparams.compile if isinstance(self.hparams.compile, dict) else {}
        self.model.compile(**options)

    def _metrics(self, stage: str, dataloader_idx: int) -> nn.ModuleDict:
        """The metrics of one evaluation loader, created on first use (one set per loader)."""
        key = f"{stage}_{dataloader_idx}"
        if key not in self.metric_sets:
            h = self.hparams
            names = list(h.metrics or default_metrics(h.task, h.num_labels))
            metrics = nn.ModuleDict(dict(build_metrics(names, h.task, h.num_labels)))
            self.metric_sets[key] = metrics.to(self.device).train(self.training)
        return self.metric_sets[key]

    def forward(self, **inputs: Tensor) -> Any:
        """The PEFT model's forward (transformers outputs)."""
        return self.model(**inputs)

    @override
    def on_train_epoch_start(self) -> None:
        # transformers 5 loads models in eval mode and Lightning keeps module modes; LoRA+ must train
        # with dropout on, as the paper did.
        self.model.train()

    def compute_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The model's loss on a batch: what ``training_step`` minimises (and the auto search scores), unlogged."""
        return self(**{k: v for k, v in batch.items() if k in _MODEL_KEYS}).loss

    @override
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.compute_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def _evaluate(self, stage: str, batch: dict[str, Tensor], dataloader_idx: int) -> None:
        metrics = self._metrics(stage, dataloader_idx)
        size = batch["input_ids"].shape[0]
        out = self(**{k: v for k, v in batch.items() if k in _MODEL_KEYS})
        if out.loss is not None:  # None for batches without labels (MMLU questions)
            self.log(f"{stage}/loss", out.loss, sync_dist=True, batch_size=size)
        update_metrics(metrics, out.logits, batch)
        scalars = {f"{stage}/{n}": m for n, m in metrics.items() if not isinstance(m, KeyedMetric)}
        self.log_dict(scalars, on_epoch=True, on_step=False, batch_size=size)

    def _log_keyed(self, stage: str) -> None:
        """Log the metrics with several results (MMLU per category) at the end of an evaluation epoch."""
        for key, metrics in self.metric_sets.items():
            for name, metric in metrics.items():
                if key.startswith(stage) and isinstance(metric, KeyedMetric):
                    self.log_dict(metric.log_items(f"{stage}/{name}"), sync_dist=False)  # computed over ranks
                    metric.reset()

    @override
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate("val", batch, dataloader_idx)

    @override
    def test_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate("test", batch, dataloader_idx)

    @override
    def on_validation_epoch_end(self) -> None:
        self._log_keyed("val")

    @override
    def on_validation_end(self) -> None:
        # Metric sets made during this evaluation (e.g. the sanity check) were made in eval mode, and Lightning
        # restores only the modes it recorded: put them back with the rest, or training would start with modules
        # "in eval mode" (a warning that suggests the model itself is).
        self.metric_sets.train()

    @override
    def on_test_epoch_end(self) -> None:
        self._log_keyed("test")

    @override
    def predict_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> list[dict]:
        return predict_rows(self, batch)

    @property
    def group_settings(self) -> GroupSettings:
        """The learning-rate settings of the LoRA+ groups, read from the hyperparameters.

        Raises:
            RuntimeError: While ``lr`` or ``ratio`` is still ``"auto"`` (chosen at the start of ``fit``).
        """
        if search_pending(self.hparams):
            raise RuntimeError(
                f"lr={self.hparams.lr!r}, ratio={self.hparams.ratio!r}: an 'auto' setting is chosen at the start of "
                "`fit`, so the groups do not exist before it. Fit first, or load a checkpoint of a run that chose."
            )
        return GroupSettings(**{k: self.hparams[k] for k in GroupSettings.field_names() if k in self.hparams})

    def _prior_hint(self) -> str:
        """Advice for a search that learned only the prior: a regression head left at the model's bias spends the
        trials' first steps moving its output to the labels' scale."""
        h = self.hparams
        if h.task != "sequence_classification" or h.num_labels != 1 or h.get("head_bias") != "model":
            return ""
        return (
            " This regression head started at the model's bias (0 for a new head), so the trials' first steps went "
            "into reaching the labels' scale: `head_bias: label_mean` starts it at the training labels' mean."
        )

    def _fitting(self) -> bool:
        return self._trainer is not None and self._trainer.state.fn == TrainerFn.FITTING

    def _start_head_at_label_mean(self) -> None:
        """``head_bias="label_mean"``: set the regression head's bias to the training labels' mean (every rank
        reads every row, so all agree). A checkpoint restored later in ``fit`` overwrites it, as it should."""
        name, bias = regression_head_bias(self.model)
        mean, rows = training_label_mean(self.trainer)
        with torch.no_grad():
            bias.fill_(mean)
        self._head_started = True
        rank_zero_info(
            f"lit-loraplus: head_bias='label_mean': {name} starts at {mean:.4g}, the mean of {rows} training labels"
        )

    @override
    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError(
                "The LoRA+ schedules need the run's length, but the trainer has no limit "
                "(max_steps=-1 and max_epochs=-1): set `trainer.max_steps` or `trainer.max_epochs`."
            )
        if search_pending(h):  # here: the model is placed and wrapped, a resumed run's choice restored, no step taken
            outcome = search(self, self.trainer, max(1, int(total)))
            self.hparams.update({"lr": outcome.lr, "ratio": outcome.ratio})
            self.search_record = outcome.to_dict()
            report_search(self.trainer, outcome, self._prior_hint())
        configured = configure_loraplus_optimizers(
            self.model,
            self.optimizer,
            self.group_settings,
            total_steps=max(1, int(total)),
            lr_schedule=h.lr_schedule,
            warmup_steps=h.warmup_steps,
            min_lr_ratio=h.min_lr_ratio,
            ratio_schedule=h.ratio_schedule,
            ratio_warmup_steps=h.ratio_warmup_steps,
            initial_ratio=h.initial_ratio,
        )
        warn_half_precision_adapters(self.model)
        sizes = getattr(self, "_sizes", None) or trainable_sizes(self.model)
        self._group_description = describe_groups(configured["optimizer"].param_groups, self.model, sizes)
        return configured

    @override
    def on_fit_start(self) -> None:
        # Every rank must train the same groups: a mismatch (different model or adapter files on one node)
        # would otherwise surface as a hang in the first all-reduce or as silently different learning rates.
        if getattr(self, "_group_description", None) is not None:  # None: a subclass built its own optimizer
            check_groups_across_ranks(self._group_description)
        self._check_saved_groups()
        datamodule = getattr(self.trainer, "datamodule", None)
        if getattr(datamodule, "tokenizer_name", None) is not None:
            ckpt.check_tokenizer_fits(self.model, datamodule.tokenizer, f"data.tokenizer={datamodule.tokenizer_name}")

    def _check_saved_groups(self) -> None:
        """A resumed optimizer must have the groups these settings build (checked before its state is loaded)."""
        saved, built = getattr(self, "_saved_groups", None), getattr(self, "_group_description", None)
        if saved is not None and built is not None:
            ckpt.check_group_layout(saved, [(g["name"], g["params"]) for g in built])
            self._saved_groups = None

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = ckpt.trainable_state(self, checkpoint["state_dict"])
        checkpoint[ckpt.RNG_KEY] = rng_state()
        if self.search_record is not None:
            checkpoint[ckpt.SEARCH_KEY] = self.search_record

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        ckpt.check_trainable_keys(self, checkpoint["state_dict"])
        ckpt.check_trainable_shapes(self, checkpoint["state_dict"])
        self._head_started = True  # the head comes from the checkpoint: a later fit must not reset its bias
        self._rng_to_restore = checkpoint.get(ckpt.RNG_KEY)
        # The run's choice for lr/ratio="auto": LightningCLI builds the module from the config ("auto") and does not
        # re-read a checkpoint's hparams, so take the values the run trained with from it (no new search).
        if chosen := ckpt.auto_choice(self.hparams, checkpoint):
            self.hparams.update(chosen)
            values = ", ".join(f"{k}={v:g}" for k, v in chosen.items())
            rank_zero_info(f"lit-loraplus: auto: resuming with the checkpoint's {values} (no new search)")
        self.search_record = checkpoint.get(ckpt.SEARCH_KEY, self.search_record)
        # Compared with the built groups before the optimizer state is loaded: in on_fit_start, or here when a
        # sharding strategy restores the checkpoint after building the optimizer.
        self._saved_groups = ckpt.saved_group_layout(checkpoint)
        self._check_saved_groups()

    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Restore the generators saved with the checkpoint right before the first resumed step, so
        # dropout draws the same numbers as in the uninterrupted run.
        if self._rng_to_restore is not None:
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def save_adapter(self, directory: str, merge: bool = False) -> None:
        """Export the adapter in PEFT format (or, with ``merge``, the merged full model).

        Args:
            directory: Output folder: ``adapter_config.json`` + ``adapter_model.safetensors`` +
                ``loraplus.json`` (λ, schedules, init, groups), or a full ``save_pretrained`` model.
            merge: Merge the adapter into the base weights and save the whole model instead.
        """
        save_adapter(self, directory, merge=merge)
