"""``head_bias="label_mean"``: a regression head starts at the training labels' mean, before any search or step, and
never over a head that came from a checkpoint; the settings it cannot serve are refused before any model loads."""

from __future__ import annotations

import statistics
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader

from lit_loraplus.core.adapters import regression_head_bias
from lit_loraplus.data import GlueDataModule
from lit_loraplus.testing import tiny_roberta
from lit_loraplus.training import LoraPlusModule


class HeadAtStart(Callback):
    """The head's output bias (trained copy and original) when training starts, before the first step."""

    def __init__(self) -> None:
        self.bias: float | None = None
        self.original: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: LoraPlusModule) -> None:
        self.bias = pl_module.model.classifier.modules_to_save["default"].bias.item()
        self.original = pl_module.model.classifier.original_module.bias.item()


def stsb(tiny_bert_dir: Path, glue_dir: Path) -> GlueDataModule:
    return GlueDataModule("stsb", str(tiny_bert_dir), data_dir=str(glue_dir), batch_size=4, train_subset=64)


def regression(tiny_bert_dir: Path, **settings) -> LoraPlusModule:
    torch.manual_seed(0)
    return LoraPlusModule(str(tiny_bert_dir), num_labels=1, r=4, head_lr=1e-2, **settings)


def fit(module: LoraPlusModule, data, tmp: Path, steps: int, callbacks: list[Callback], **kwargs) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=steps, default_root_dir=tmp, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=callbacks,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
    )  # fmt: skip
    trainer.fit(module, data, **kwargs)
    return trainer


@pytest.mark.parametrize(
    ("settings", "at_mean"),
    [
        ({}, False),
        ({"head_bias": "label_mean"}, True),
        ({"lr": "auto"}, False),
        ({"head_bias": "label_mean", "lr": "auto"}, True),
    ],
    ids=["model", "label_mean", "model-after-a-search", "label_mean-after-a-search"],
)
def test_the_head_starts_at_the_training_labels_mean(settings, at_mean, tmp_path, tiny_bert_dir, glue_dir) -> None:
    """With ``label_mean`` the trained head's bias is the mean of the training rows' scores when training starts
    (also after an ``lr="auto"`` search, which restores the state it started from); the original module's bias and
    the default (``model``: 0, as transformers builds a new head) are untouched. A search whose trials learned only
    the prior (these few steps of a tiny model) says so; with the head at 0 its warning names ``head_bias``."""
    data, head = stsb(tiny_bert_dir, glue_dir), HeadAtStart()
    if "lr" in settings:
        settings |= {"search_lrs": [1e-3, 1e-2], "search_budget": 4, "search_min_steps": 1}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(regression(tiny_bert_dir, **settings), data, tmp_path, 2, [head])
    mean = statistics.fmean(float(row["labels"]) for row in data.datasets["train"])
    assert 1.0 < mean < 4.0  # STS-B scores are 0-5: a mean far from the new head's 0
    assert head.bias == pytest.approx(mean if at_mean else 0.0, abs=1e-6) and head.original == 0.0
    prior = [str(w.message) for w in caught if "no better than predicting" in str(w.message)]
    assert len(prior) == ("lr" in settings)
    assert any("`head_bias: label_mean` starts it" in text for text in prior) == ("lr" in settings and not at_mean)


def test_a_head_from_a_checkpoint_keeps_its_bias(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """A resumed run (``ckpt_path``) and a module loaded with ``load_from_checkpoint`` and fitted again start from
    the checkpoint's trained bias, not from the mean again."""
    data, saved = stsb(tiny_bert_dir, glue_dir), ModelCheckpoint(tmp_path / "ckpt", save_last=True)
    first = regression(tiny_bert_dir, head_bias="label_mean")
    fit(first, data, tmp_path, 3, [saved])
    trained = first.model.classifier.modules_to_save["default"].bias.item()
    mean = statistics.fmean(float(row["labels"]) for row in data.datasets["train"])
    assert abs(trained - mean) > 1e-4  # three steps at head_lr 1e-2 moved it
    resumed, loaded = HeadAtStart(), HeadAtStart()
    resume = regression(tiny_bert_dir, head_bias="label_mean")
    fit(resume, data, tmp_path, 4, [resumed], ckpt_path=saved.last_model_path)
    module = LoraPlusModule.load_from_checkpoint(saved.last_model_path)
    fit(module, data, tmp_path, 2, [loaded])
    assert resumed.bias == pytest.approx(trained, abs=1e-6) and loaded.bias == pytest.approx(trained, abs=1e-6)


def test_labels_that_are_not_one_number_are_refused_before_training(tmp_path, tiny_bert_dir) -> None:
    """Rows whose ``labels`` is not a regression target fail at the start of ``fit``, naming the row and the way
    out, before any step."""
    rows = [{"input_ids": torch.tensor([5, 6, 7]), "labels": [1.0, 2.0]}] * 4
    with pytest.raises(ValueError, match=r"row 0 has `labels`=\[1.0, 2.0\].*set `model.head_bias` to 'model'"):
        fit(regression(tiny_bert_dir, head_bias="label_mean"), DataLoader(rows, batch_size=2), tmp_path, 1, [])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_labels": 2}, r"starts a regression head .* num_labels=2: set `head_bias` to 'model'"),
        ({"task": "causal_lm", "num_labels": None}, r"task='causal_lm'"),
        ({"num_labels": 1, "adapter": "some/adapter"}, r"`adapter='some/adapter'` loads a trained head"),
        ({"num_labels": 1, "head_bias": "zero"}, r"`head_bias='zero'` must be one of \['model', 'label_mean'\]"),
    ],
    ids=["classification", "causal-lm", "adapter", "unknown"],
)
def test_settings_label_mean_cannot_serve_are_refused(settings, message) -> None:
    """Classification, a causal LM, a trained adapter's head and an unknown value are refused at construction."""
    settings = {"head_bias": "label_mean"} | settings
    with pytest.raises(ValueError, match=message):
        LoraPlusModule("not/loaded", **settings)


def test_the_regression_bias_is_the_one_output_layer_of_the_trained_head() -> None:
    """RoBERTa's head is dense → out_proj: the bias found is out_proj's trained copy; a head with several outputs
    has none to set, and the error says what to do."""
    module = LoraPlusModule(tiny_roberta(num_labels=1), num_labels=1, r=4)
    name, bias = regression_head_bias(module.model)
    assert name == "classifier.modules_to_save.default.out_proj.bias" and bias.requires_grad
    assert bias is module.model.classifier.modules_to_save["default"].out_proj.bias
    with pytest.raises(ValueError, match=r"hold 0 such layers: set `head_bias='model'`"):
        regression_head_bias(LoraPlusModule(tiny_roberta(num_labels=3), num_labels=3, r=4).model)
