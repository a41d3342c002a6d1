"""LoraPlusModule(compile=...): the PEFT model is compiled in place, trains identically, keeps its names."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import FSDPStrategy

from lit_loraplus.training import LoraPlusModule
from lit_loraplus.training.settings import compile_problems

BATCH = {"input_ids": torch.randint(5, 900, (4, 12), generator=torch.Generator().manual_seed(0))}


class Losses(L.Callback):
    """Records the training loss of every step."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append(float(outputs["loss"]))


def _fit(tmp_path: Path, model_dir: Path, **kwargs) -> tuple[LoraPlusModule, list[float]]:
    torch.manual_seed(0)
    module = LoraPlusModule(str(model_dir), num_labels=2, r=4, dropout=0.0, **kwargs)
    rows = [{**{k: v[i] for k, v in BATCH.items()}, "labels": torch.tensor(i % 2)} for i in range(4)]
    losses = Losses()
    L.Trainer(
        max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[losses], default_root_dir=tmp_path,
    ).fit(module, torch.utils.data.DataLoader(rows * 3, batch_size=4))  # fmt: skip
    return module, losses.values


def test_compiled_module_trains_like_eager_with_the_same_parameter_names(tmp_path: Path, tiny_bert_dir: Path) -> None:
    """``compile={"backend": "eager"}`` (Dynamo capture without code generation, fast on CPU) compiles the
    PEFT model in place: same losses as without compile, same state-dict keys (checkpoints interchange)."""
    compiled, compiled_losses = _fit(tmp_path / "c", tiny_bert_dir, compile={"backend": "eager"})
    eager, eager_losses = _fit(tmp_path / "e", tiny_bert_dir)
    assert compiled.model._compiled_call_impl is not None and eager.model._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-5) and len(eager_losses) == 3


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"mod": "max-autotune"}, r"unknown torch.compile arguments \['mod'\]; valid: \[.*'mode'"),
        ("yes", r"`compile='yes'` must be true/false or a dict"),
    ],
)
def test_bad_compile_settings_fail_at_construction(value: object, match: str) -> None:
    """A misspelt torch.compile argument or a non-bool, non-dict value is refused before any model is built."""
    assert compile_problems(True) == [] and compile_problems({"dynamic": True}) == []
    with pytest.raises(ValueError, match=match):
        LoraPlusModule("unused-model-id", compile=value)


def test_compile_with_fsdp_is_refused_at_setup(tiny_bert_dir: Path) -> None:
    """Under FSDP the model would be compiled before it is sharded: configure_model says so and names the fix."""
    module = LoraPlusModule(str(tiny_bert_dir), num_labels=2, compile=True)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False)
    # Lightning refuses FSDP on a CPU accelerator when the Trainer is built, so the real strategy object is
    # put in afterwards: the module only reads `trainer.strategy` (benchmarks/gpu_check.py runs it for real).
    trainer._accelerator_connector.strategy = FSDPStrategy()
    module.trainer = trainer
    with pytest.raises(ValueError, match=r"`compile=True` is not supported with FSDPStrategy.*model.compile: false"):
        module.configure_model()
