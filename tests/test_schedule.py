"""Base LR schedule × ratio schedule: values at the landmarks, lr_B/lr_A = λ(t), resume, Lightning."""

from __future__ import annotations

import itertools
import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from peft import LoraConfig, get_peft_model
from torch.utils.data import DataLoader, TensorDataset

from lit_loraplus import (
    LRSchedule,
    RatioSchedule,
    configure_loraplus_optimizers,
    create_loraplus_optimizer,
    loraplus_scheduler,
)
from lit_loraplus.testing import tiny_bert

LR, RATIO, TOTAL, WARMUP, RAMP, LAM0 = 1e-3, 16.0, 100, 10, 40, 2.0


def lora_bert() -> torch.nn.Module:
    return get_peft_model(tiny_bert(), LoraConfig(r=4, target_modules=["query"], modules_to_save=["classifier"]))


def expected_s(name: str, t: int) -> float:
    """The base schedule written out independently for the landmark steps used below."""
    if t < WARMUP:
        return t / WARMUP
    progress = (t - WARMUP) / (TOTAL - WARMUP)
    return {"constant": 1.0, "linear": 1 - progress, "cosine": 0.5 * (1 + math.cos(math.pi * progress))}[name]


def expected_ratio(name: str, t: int) -> float:
    if name == "constant" or t >= RAMP:
        return RATIO
    frac = t / RAMP if name == "linear" else 0.5 * (1 - math.cos(math.pi * t / RAMP))
    return LAM0 + (RATIO - LAM0) * frac


def run_schedule(base: str, ratio: str) -> tuple[list[dict[str, float]], torch.optim.lr_scheduler.LambdaLR]:
    """Learning rates of every named group at steps 0..TOTAL."""
    model = lora_bert()
    optimizer = create_loraplus_optimizer(model, torch.optim.SGD, lr=LR, ratio=RATIO)
    ramp = RAMP if ratio != "constant" else 0
    scheduler = loraplus_scheduler(
        optimizer, LRSchedule(base, TOTAL, WARMUP), RatioSchedule(ratio, RATIO, initial_ratio=LAM0, warmup_steps=ramp)
    )
    history = []
    for _ in range(TOTAL + 1):
        history.append({g["name"]: g["lr"] for g in optimizer.param_groups})
        optimizer.step()
        scheduler.step()
    return history, scheduler


COMBOS = list(itertools.product(("constant", "linear", "cosine"), repeat=2))


@pytest.mark.parametrize(("base", "ratio"), COMBOS)
def test_landmarks_and_ratio_every_step(base: str, ratio: str) -> None:
    """A, B and head learning rates at step 0, mid warm-up, end of warm-up, mid-run and the last step
    equal the formulas; lr_B / lr_A == λ(t) at every step after step 0."""
    history, _ = run_schedule(base, ratio)
    for t in (0, WARMUP // 2, WARMUP, (TOTAL + WARMUP) // 2, TOTAL - 1, TOTAL):
        s = expected_s(base, t)
        assert history[t]["lora_A"] == pytest.approx(LR * s, abs=1e-15), t
        assert history[t]["saved"] == pytest.approx(LR * s, abs=1e-15), t
        assert history[t]["lora_B"] == pytest.approx(LR * s * expected_ratio(ratio, t), abs=1e-15), t
    for t, lrs in enumerate(history):
        if lrs["lora_A"] > 0:  # s(0) = 0 under warm-up and s(TOTAL) = 0 under decay
            assert lrs["lora_B"] / lrs["lora_A"] == pytest.approx(expected_ratio(ratio, t), rel=1e-9), t


def test_min_lr_ratio_is_a_fraction_so_the_ratio_survives() -> None:
    """A minimum learning rate is a fraction of each group's peak: at the end lr_B / lr_A is still λ."""
    model = lora_bert()
    optimizer = create_loraplus_optimizer(model, torch.optim.SGD, lr=LR, ratio=RATIO)
    scheduler = loraplus_scheduler(optimizer, LRSchedule("cosine", 10, min_lr_ratio=0.1))
    for _ in range(12):
        optimizer.step()
        scheduler.step()
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["lora_A"] == pytest.approx(0.1 * LR)
    assert lrs["lora_B"] == pytest.approx(0.1 * LR * RATIO)


def test_state_round_trip_continues_identically() -> None:
    """A scheduler rebuilt from a mid-run state_dict (after a torch.save/torch.load with weights_only=True)
    continues the same curve, ratio ramp included."""
    straight, _ = run_schedule("cosine", "linear")
    model = lora_bert()
    optimizer = create_loraplus_optimizer(model, torch.optim.SGD, lr=LR, ratio=RATIO)
    sched = loraplus_scheduler(
        optimizer, LRSchedule("cosine", TOTAL, WARMUP), RatioSchedule("linear", RATIO, LAM0, RAMP)
    )
    for _ in range(25):
        optimizer.step()
        sched.step()
    state = {"optimizer": optimizer.state_dict(), "scheduler": sched.state_dict()}
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    model2 = lora_bert()
    optimizer2 = create_loraplus_optimizer(model2, torch.optim.SGD, lr=LR, ratio=RATIO)
    # Built with a *different* schedule: the state must win, as on resume.
    sched2 = loraplus_scheduler(optimizer2, LRSchedule("linear", 7), RatioSchedule("constant", RATIO))
    optimizer2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["scheduler"])
    for t in range(25, TOTAL + 1):
        assert {g["name"]: g["lr"] for g in optimizer2.param_groups} == straight[t], t
        optimizer2.step()
        sched2.step()


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: LRSchedule("exponential", 10), r"`lr_schedule='exponential'` must be one of"),
        (lambda: LRSchedule("linear", 0), r"`total_steps=0` must be an integer >= 1"),
        (
            lambda: LRSchedule("linear", 10, warmup_steps=11),
            r"`warmup_steps=11` is longer than the run \(total_steps=10\)",
        ),
        (lambda: LRSchedule("linear", 10, min_lr_ratio=2.0), r"`min_lr_ratio=2.0` must be in \[0, 1\]"),
        (lambda: RatioSchedule("step", 16), r"`ratio_schedule='step'` must be one of"),
        (lambda: RatioSchedule("constant", 16, warmup_steps=5), r"`ratio_warmup_steps=5` has no effect"),
        (lambda: RatioSchedule("linear", 16), r"ratio_schedule='linear' needs `ratio_warmup_steps` >= 1"),
        (lambda: RatioSchedule("linear", -1, warmup_steps=3), r"`ratio=-1` must be a positive finite number"),
    ],
)
def test_bad_schedules(build, match: str) -> None:
    """Each bad schedule setting is a ValueError quoting the setting and value."""
    with pytest.raises(ValueError, match=match):
        build()


def test_ratio_ramp_longer_than_run_refused_before_building() -> None:
    """A λ ramp longer than the run is refused, and no optimizer is built (the model's params are untouched)."""
    model = lora_bert()
    with pytest.raises(ValueError, match=r"ratio_warmup_steps=50 is longer than the run \(total_steps=20\)"):
        configure_loraplus_optimizers(model, lr=LR, total_steps=20, ratio_schedule="linear", ratio_warmup_steps=50)


class TinyClassifier(L.LightningModule):
    """The one-line integration: a user's own module returning configure_loraplus_optimizers(...)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = lora_bert()

    def training_step(self, batch, batch_idx):
        ids, labels = batch
        return self.model(input_ids=ids, labels=labels).loss

    def configure_optimizers(self):
        return configure_loraplus_optimizers(
            self.model, lr=LR, ratio=RATIO, total_steps=self.trainer.estimated_stepping_batches, warmup_steps=1
        )


def test_lightning_fit_logs_one_lr_per_named_group(tmp_path) -> None:
    """Inside a 2-step Lightning fit, LearningRateMonitor logs one key per named group, and the
    logged B rate is λ times A's."""
    ids = torch.randint(0, 128, (8, 10))
    data = DataLoader(TensorDataset(ids, torch.randint(0, 2, (8,))), batch_size=4)
    trainer = L.Trainer(
        max_steps=2,
        logger=CSVLogger(tmp_path),
        callbacks=[LearningRateMonitor("step")],
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(TinyClassifier(), data)
    import csv

    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    lr_keys = {k for k in rows[0] if k.startswith("lr-")}
    assert lr_keys == {"lr-AdamW/lora_A", "lr-AdamW/lora_B", "lr-AdamW/saved", "lr-AdamW/saved_no_decay"}
    last = [r for r in rows if r["lr-AdamW/lora_A"]][-1]
    assert float(last["lr-AdamW/lora_B"]) == pytest.approx(RATIO * float(last["lr-AdamW/lora_A"]))
    assert float(last["lr-AdamW/lora_A"]) > 0
