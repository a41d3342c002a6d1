"""Gradient accumulation and clipping from YAML, and schedules under an optimizer wrapper that drops empty groups."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from scale_helpers import fit_tiny

from lit_loraplus.core.model import apply_lora
from lit_loraplus.core.optim import loraplus_param_groups
from lit_loraplus.core.schedule import LRSchedule, RatioSchedule, loraplus_scheduler, lr_factor, ratio_at
from lit_loraplus.testing import tiny_llama


class StepRecorder(Callback):
    """Per micro-batch: the optimizer step count and every group's learning rate after the batch."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.rows.append((trainer.global_step, {g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups}))


def test_scheduler_steps_once_per_optimizer_step_under_accumulation(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """With trainer.accumulate_grad_batches=2 and batch 4, 6 micro-batches make 3 optimizer steps; after N
    optimizer steps every group's learning rate is its peak × the linear schedule at N (over 3 total steps),
    and lr_B / lr_A = λ throughout."""
    recorder = StepRecorder()
    args = ["--data.batch_size=4", "--data.train_subset=24", "--trainer.accumulate_grad_batches=2"]
    args += ["--trainer.max_steps=3", "--model.lr_schedule=linear", "--model.lr=0.001", "--model.ratio=8"]
    cli = fit_tiny(tmp_path, tiny_bert_dir, glue_dir, *args, callbacks=[recorder])
    assert [step for step, _ in recorder.rows] == [0, 1, 1, 2, 2, 3]
    for step, lrs in recorder.rows:
        factor = lr_factor(step, "linear", total_steps=3, warmup_steps=0, min_lr_ratio=0.0)
        assert lrs["lora_A"] == pytest.approx(1e-3 * factor)
        assert lrs["lora_B"] == pytest.approx(8e-3 * factor)
    assert cli.trainer.lr_scheduler_configs[0].scheduler.last_epoch == 3


class GradientProbe(Callback):
    """Snapshots the unclipped gradients and the weights before each SGD step, and the weights after it."""

    def __init__(self) -> None:
        self.before: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}
        self.after: dict[str, torch.Tensor] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.before:
            return  # first step only
        lr = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
        for name, p in pl_module.named_parameters():
            if p.grad is not None:
                self.before[name] = (p.detach().clone(), p.grad.detach().clone(), lr[id(p)])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self.after:
            self.after = {n: p.detach().clone() for n, p in pl_module.named_parameters() if n in self.before}


def test_gradient_clipping_uses_one_norm_over_all_groups(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """trainer.gradient_clip_val (norm) rescales all groups' gradients by one factor so their joint norm equals the
    threshold: with SGD the step of each parameter is lr_group × clipped gradient, whatever the group's lr (λ·η
    for B)."""
    probe = GradientProbe()
    args = ["--trainer.gradient_clip_val=0.001", "--trainer.gradient_clip_algorithm=norm", "--trainer.max_steps=1"]
    # jsonargparse carries AdamW's default weight_decay=0.01 over to SGD: reset it to SGD's default.
    args += ["--model.optimizer=torch.optim.SGD", "--model.optimizer.init_args.weight_decay=0", "--model.ratio=16"]
    fit_tiny(tmp_path, tiny_bert_dir, glue_dir, *args, callbacks=[probe])
    total = torch.sqrt(sum(g.pow(2).sum() for _, g, _ in probe.before.values()))
    assert total > 0.01  # so clipping really happens
    scale = 0.001 / total
    clipped = {n: (w - probe.after[n]) / lr for n, (w, _, lr) in probe.before.items()}
    # (w - w') / lr recovers the clipped gradient up to fp32 cancellation (~ulp(w) / lr ≈ 1e-6 per element).
    assert torch.sqrt(sum(c.pow(2).sum() for c in clipped.values())) == pytest.approx(0.001, rel=1e-3)
    for name, (_, grad, _) in probe.before.items():
        torch.testing.assert_close(clipped[name], grad * scale, rtol=0, atol=2e-6)
        assert clipped[name].norm() == pytest.approx(float(grad.norm() * scale), rel=2e-2, abs=1e-6)
    assert {lr for *_, lr in probe.before.values()} == {0.01, 0.16}  # lora_A/head at η, lora_B at λ·η


def drop_empty_groups(optimizer: torch.optim.Optimizer) -> None:
    """What DeepSpeed (>= 0.18) does to the optimizer it wraps: empty param groups disappear."""
    optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]


def test_schedule_and_ratio_survive_a_wrapper_that_drops_empty_groups() -> None:
    """LoRA+ groups are never empty, so a DeepSpeed-like wrapper that drops empty groups changes nothing: the
    per-group LambdaLR keeps one multiplier per group and lr_B / lr_A follows λ(t) through a ratio warm-up. A
    PEFT-style group list with an empty group, wrapped the same way, breaks the scheduler (the hazard avoided)."""
    model = apply_lora(tiny_llama(), "causal_lm", {"r": 4, "target_modules": ["q_proj", "v_proj"]})
    groups = loraplus_param_groups(model, lr=1e-3, ratio=16)
    optimizer = torch.optim.AdamW(groups)
    schedule, ratios = LRSchedule("cosine", 10, 2, 0.0), RatioSchedule("linear", 16.0, 1.0, 4)
    scheduler = loraplus_scheduler(optimizer, schedule, ratios)
    drop_empty_groups(optimizer)
    assert [g["name"] for g in optimizer.param_groups] == [g["name"] for g in groups]
    by_name = {g["name"]: g for g in optimizer.param_groups}
    for step in range(1, 11):
        optimizer.step()
        scheduler.step()
        assert by_name["lora_A"]["lr"] == pytest.approx(1e-3 * lr_factor(step, "cosine", 10, 2, 0.0))
        if by_name["lora_A"]["lr"] > 0:
            assert by_name["lora_B"]["lr"] / by_name["lora_A"]["lr"] == pytest.approx(
                ratio_at(step, "linear", 16, 1, 4)
            )

    with_empty = [*loraplus_param_groups(model, lr=1e-3, ratio=16), {"params": [], "name": "embedding", "lr": 1e-6}]
    optimizer = torch.optim.AdamW(with_empty)
    scheduler = loraplus_scheduler(optimizer, schedule, ratios)
    drop_empty_groups(optimizer)
    optimizer.step()
    with pytest.raises(ValueError, match="zip"):
        scheduler.step()
