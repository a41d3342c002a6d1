"""LoraPlusModule: train mode, groups through Lightning, metrics, settings errors."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from peft import PeftModel

from lit_loraplus.callbacks import FeatureLearningMonitor, UpdateNormMonitor
from lit_loraplus.data import GlueDataModule
from lit_loraplus.testing import tiny_llama
from lit_loraplus.training import LoraPlusModule
from lit_loraplus.training.settings import optimizer_overrides


def trainer(tmp_path, **kwargs) -> L.Trainer:
    settings = {
        "max_steps": 2,
        "logger": CSVLogger(tmp_path),
        "log_every_n_steps": 1,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 2,
        "val_check_interval": 2,
        "default_root_dir": tmp_path,
    } | kwargs
    return L.Trainer(**settings)


class ModeProbe(Callback):
    """Records whether every submodule is in train mode during training and eval mode during validation."""

    def __init__(self) -> None:
        self.train_modes: list[bool] = []
        self.val_modes: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.train_modes.append(all(m.training for m in pl_module.modules()))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.val_modes.append(not any(m.training for m in pl_module.modules()))


def test_fit_in_train_mode_on_a_from_pretrained_model(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """A model loaded with from_pretrained (which returns eval mode) trains with every module in train
    mode (dropout on) and validates in eval mode; val metrics of SST-2 are logged."""
    from transformers import AutoModelForSequenceClassification

    assert not AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).training  # the trap
    data = GlueDataModule("sst2", str(tiny_bert_dir), data_dir=str(glue_dir), batch_size=4, train_subset=16)
    module = LoraPlusModule(str(tiny_bert_dir), num_labels=data.num_labels, metrics=data.metrics, r=4)
    probe = ModeProbe()
    trainer(tmp_path, callbacks=[probe, LearningRateMonitor("step")]).fit(module, data)
    assert probe.train_modes == [True, True]
    assert probe.val_modes and all(probe.val_modes)
    import csv

    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    keys = {k for row in rows for k, v in row.items() if v}
    assert {"train/loss", "val/loss", "val/accuracy", "lr-AdamW/lora_A", "lr-AdamW/lora_B"} <= keys
    assert isinstance(module.model, PeftModel)


class LossRecorder(Callback):
    """Records the training loss of every step."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))


def test_validating_does_not_change_training(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """Dropout masks come from torch's global generator, so a draw from it during validation would change every
    later training step. The package's loaders and monitors draw from their own generators: a run that checks
    before training and validates every 2 steps, with both monitors on, trains exactly as one that never validates."""

    def losses(**settings) -> list[float]:
        L.seed_everything(0)
        data = GlueDataModule("sst2", str(tiny_bert_dir), data_dir=str(glue_dir), batch_size=4, train_subset=32,
                              val_subset=8, eval_batch_size=4)  # fmt: skip
        module = LoraPlusModule(str(tiny_bert_dir), num_labels=2, metrics=data.metrics, r=4, lr=1e-2, dropout=0.1)
        recorder = LossRecorder()
        monitors = [UpdateNormMonitor(log_every_n_steps=1), FeatureLearningMonitor(log_every_n_steps=1), recorder]
        trainer(tmp_path, max_steps=6, callbacks=monitors, **settings).fit(module, data)
        return recorder.losses

    validating = losses(num_sanity_val_steps=2)
    assert len(validating) == 6 and len(set(validating)) == 6  # dropout on, six distinct steps
    assert losses(limit_val_batches=0) == validating


def test_module_from_python_instance_and_init_loraplus() -> None:
    """From Python, an nn.Module is wrapped at once; init='loraplus' gives B random and A = 0."""
    module = LoraPlusModule(tiny_llama(), task="causal_lm", target_modules=["q_proj", "v_proj"], init="loraplus")
    a = [p for n, p in module.named_parameters() if ".lora_A." in n]
    b = [p for n, p in module.named_parameters() if ".lora_B." in n]
    assert len(a) == len(b) == 4
    assert all(torch.count_nonzero(p) == 0 for p in a)
    assert all(torch.count_nonzero(p) == p.numel() for p in b)


def test_task_not_matching_model() -> None:
    """A causal LM given task='sequence_classification' is refused, naming both and the fix."""
    with pytest.raises(
        ValueError, match=r"`task='sequence_classification'` does not match the model: LlamaForCausalLM"
    ):
        LoraPlusModule(tiny_llama(), task="sequence_classification")


def test_target_modules_matching_nothing_lists_candidates() -> None:
    """target_modules that match nothing: the error lists the module names available."""
    with pytest.raises(ValueError, match=r"`target_modules=\['qkv'\]` match no module.*'q_proj'.*'v_proj'"):
        LoraPlusModule(tiny_llama(), task="causal_lm", target_modules=["qkv"])


def test_hub_id_offline_says_how_to_use_a_local_folder(monkeypatch) -> None:
    """A hub id without network: a clear error that says to pass a local directory."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module = LoraPlusModule("some-org/not-cached-model")
    with pytest.raises(ValueError, match=r"not a local directory .* HF_HUB_OFFLINE is set.*pass `model=DIR`"):
        module.configure_model()


def test_settings_errors_all_at_once() -> None:
    """Bad module settings of every kind (LoRA shape, group rates, both schedules, compile) are all listed in one
    ValueError before any model is loaded."""
    with pytest.raises(ValueError, match=r"(?s)`task='ner'`.*`r=0`.*`dropout=1.5`.*`init='xavier'`"):
        LoraPlusModule("unused", task="ner", r=0, dropout=1.5, init="xavier")
    kinds = r"(?s)^Invalid LoraPlusModule settings: .*`ratio=0`.*`head_lr=-1`.*`min_lr_ratio=2`.*`initial_ratio=0`.*"
    with pytest.raises(ValueError, match=kinds + r"`compile` has unknown"):
        LoraPlusModule("unused", ratio=0, head_lr=-1, min_lr_ratio=2, initial_ratio=0, compile={"nope": 1})
    with pytest.raises(ValueError, match=r"`init='loraplus'` re-initialises new adapters, but `adapter="):
        LoraPlusModule("unused", init="loraplus", adapter="some/dir")


def test_optimizer_lr_in_init_args_refused() -> None:
    """An lr or weight_decay in the optimizer's init_args (which LoRA+ groups would override) is refused."""
    cli_like = functools.partial(torch.optim.AdamW, lr=0.5, betas=(0.9, 0.99), weight_decay=0.01)
    assert optimizer_overrides(cli_like) == {"lr": 0.5}
    with pytest.raises(ValueError, match=r"`model.optimizer.init_args.lr=0.5` would be overridden.*set `model.lr`"):
        LoraPlusModule("unused", optimizer=cli_like)


def test_gradient_checkpointing_trains_the_same(tmp_path) -> None:
    """gradient_checkpointing=True (use_reentrant=False + PEFT's input-grad hook) gives the same loss and
    gradients as without it, on a tiny Llama with dropout off."""
    batch = {"input_ids": torch.randint(0, 128, (2, 16))}
    batch["labels"] = batch["input_ids"].clone()
    grads = []
    for checkpointing in (False, True):
        module = LoraPlusModule(
            tiny_llama(seed=1),
            task="causal_lm",
            dropout=0.0,
            target_modules=["q_proj"],
            gradient_checkpointing=checkpointing,
        )
        assert module.model.get_base_model().is_gradient_checkpointing == checkpointing
        module.model.train()
        module(**batch).loss.backward()
        grads.append({n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-6)
