"""Nothing lost: `last.ckpt` is the latest state whatever top-k decides, preemption stops at an optimizer-step
boundary with the state saved, and `--ckpt_path auto` serves the first launch and every relaunch."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from lit_loraplus.callbacks import AdapterCheckpoint, AdapterExport
from lit_loraplus.callbacks.preemption import PREEMPTED_EXIT_CODE, Preempted
from lit_loraplus.cli import ConfigError, LoraPlusCLI, export_main
from lit_loraplus.data import GlueDataModule
from lit_loraplus.training import LoraPlusModule


class RisingMonitor(Callback):
    """Logs `val/fake` = 1, 2, 3, ... at successive validations: with mode=min only the first one improves."""

    def __init__(self) -> None:
        self.count = 0

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.count += 1
            pl_module.log("val/fake", float(self.count))


class SignalOnMicroBatch(Callback):
    """Sends `number` to this process at the first micro-batch of optimizer step `step` (mid-accumulation)."""

    def __init__(self, step: int, number: int = signal.SIGTERM) -> None:
        self.step, self.number, self.sent = step, number, False

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.number)


@pytest.fixture
def sigterm_guard() -> Iterator[None]:
    """A SIGTERM that reaches the process's own handler fails the test instead of killing pytest."""

    def fail(*_: object) -> None:
        raise AssertionError("SIGTERM reached the default handler: preemption did not catch it")

    previous = signal.signal(signal.SIGTERM, fail)
    yield
    signal.signal(signal.SIGTERM, previous)


def fit(root: Path, model: Path, glue: Path, callbacks: list[Callback], ckpt_path: str | None = None, **trainer_kw):
    """A tiny-BERT SST-2 fit (dropout on, shuffled), seeded; returns the module and trainer."""
    L.seed_everything(0)
    data = GlueDataModule("sst2", str(model), data_dir=str(glue), batch_size=4, train_subset=64, val_subset=8)
    module = LoraPlusModule(str(model), num_labels=2, r=4, lr=1e-2, dropout=0.1)
    trainer = L.Trainer(
        default_root_dir=root, logger=False, enable_progress_bar=False, num_sanity_val_steps=0,
        callbacks=callbacks, **trainer_kw,
    )  # fmt: skip
    trainer.fit(module, data, ckpt_path=ckpt_path)
    return module, trainer


def same_adapters(a: Path, b: Path) -> bool:
    x, y = load_file(a / "adapter_model.safetensors"), load_file(b / "adapter_model.safetensors")
    return x.keys() == y.keys() and len(x) > 0 and all(torch.equal(x[k], y[k]) for k in x)


def test_last_ckpt_holds_the_final_step_when_the_last_validation_does_not_improve(
    tmp_path, tiny_bert_dir, glue_dir
) -> None:
    """Validations at steps 4, 8, 12 with a monitor that only improves at 4: best-k keeps step 4, last.ckpt holds
    step 12, and exporting last.ckpt gives the adapter exported at the end of fit bit for bit."""
    checkpoint = AdapterCheckpoint(monitor="val/fake", mode="min", save_top_k=1, filename="best-{step}")
    export = AdapterExport(str(tmp_path / "adapter"))
    fit(tmp_path, tiny_bert_dir, glue_dir, [RisingMonitor(), checkpoint, export], max_steps=12, val_check_interval=4)
    folder = tmp_path / "checkpoints"
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 12
    assert Path(checkpoint.best_model_path).name == "best-step=4.ckpt" and checkpoint.best_model_score == 1.0
    assert sorted(p.name for p in folder.iterdir()) == ["best-step=4.ckpt", "last.ckpt"]
    export_main(["--ckpt_path", str(folder / "last.ckpt"), "--output_dir", str(tmp_path / "exported")])
    assert same_adapters(tmp_path / "adapter", tmp_path / "exported")


def test_periodic_last_writes_leave_top_k_judging_alone(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """With last.ckpt also written every 2 steps, the best-k file and its score are those of the run without it,
    and a validation at a step already written still lands in last.ckpt (its best score included)."""
    plain = AdapterCheckpoint(dirpath=str(tmp_path / "plain"), monitor="val/fake", mode="min", filename="best-{step}")
    fit(tmp_path, tiny_bert_dir, glue_dir, [RisingMonitor(), plain], max_steps=8, val_check_interval=4)
    periodic = AdapterCheckpoint(
        dirpath=str(tmp_path / "periodic"), monitor="val/fake", mode="min", filename="best-{step}", last_every_n_steps=2
    )
    fit(tmp_path, tiny_bert_dir, glue_dir, [RisingMonitor(), periodic], max_steps=8, val_check_interval=4)
    assert Path(periodic.best_model_path).name == Path(plain.best_model_path).name == "best-step=4.ckpt"
    last = torch.load(tmp_path / "periodic" / "last.ckpt", weights_only=True)
    state = next(v for k, v in last["callbacks"].items() if k.startswith("AdapterCheckpoint"))
    assert last["global_step"] == 8 and float(state["best_model_score"]) == 1.0


@pytest.mark.parametrize(
    "number", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT], ids=["SIGTERM", "SIGUSR1", "SIGINT"]
)
def test_signal_mid_accumulation_stops_at_the_step_boundary_and_resume_is_exact(
    number, tmp_path, tiny_bert_dir, glue_dir, sigterm_guard
) -> None:
    """A signal at the first micro-batch of step 3 (accumulation 2): step 3 completes, last.ckpt holds step 4, the
    run exits with code 75 (no validation, no export); resuming it ends bit-identical to an uninterrupted run."""
    kw = {"max_steps": 8, "accumulate_grad_batches": 2, "limit_val_batches": 0}
    fit(tmp_path / "straight", tiny_bert_dir, glue_dir, [AdapterCheckpoint(), AdapterExport(str(tmp_path / "a"))], **kw)
    run = tmp_path / "stopped"
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN, not Python's handler, where a shell started pytest with `&`
    with pytest.raises(Preempted) as stopped:
        fit(run, tiny_bert_dir, glue_dir, [AdapterCheckpoint(), SignalOnMicroBatch(3, number)], **kw)
    assert stopped.value.code == PREEMPTED_EXIT_CODE == 75 and stopped.value.step == 4
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored after the run, whatever they were
    callbacks = [AdapterCheckpoint(), AdapterExport(str(tmp_path / "b"))]
    _, trainer = fit(run, tiny_bert_dir, glue_dir, callbacks, ckpt_path=str(run / "checkpoints" / "last.ckpt"), **kw)
    assert trainer.global_step == 8 and same_adapters(tmp_path / "a", tmp_path / "b")


def test_bad_checkpoint_settings_are_refused() -> None:
    """Bad triggers and signals, and preemption without last.ckpt, are one error naming each setting."""
    with pytest.raises(ValueError, match=r"(?s)`last_every_n_steps=0`.*`last_every_n_minutes=-1`.*\['SIGKILL'\]"):
        AdapterCheckpoint(last_every_n_steps=0, last_every_n_minutes=-1, preempt_signals=["SIGKILL"])
    with pytest.raises(ValueError, match=r"`save_last=False` but preemption .* `preempt_signals: \[\]`"):
        AdapterCheckpoint(save_last=False)
    with pytest.raises(ValueError, match=r"`save_last='link'` points last.ckpt at the newest top-k file"):
        AdapterCheckpoint(save_last="link")
    assert AdapterCheckpoint(save_last=False, preempt_signals=[]).save_last is False


def cli_args(root: Path, model: Path, glue: Path, steps: int) -> list[str]:
    return [
        f"--model.model={model}", "--model.r=4", "--data=lit_loraplus.data.GlueDataModule", "--data.task=sst2",
        f"--data.data_dir={glue}", "--data.train_subset=32", "--data.val_subset=8", "--data.batch_size=4",
        f"--trainer.default_root_dir={root}", f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=0",
        "--trainer.logger=false", "--trainer.enable_progress_bar=false",
        "--trainer.callbacks+=lit_loraplus.callbacks.AdapterCheckpoint",
    ]  # fmt: skip


def test_ckpt_path_auto_starts_fresh_then_resumes(tmp_path, tiny_bert_dir, glue_dir, caplog) -> None:
    """`--ckpt_path auto` with no checkpoint starts a new run and says so in one line; the same command line after
    the run resumes from its last.ckpt (here: nothing left to train) and says from which file."""
    args = cli_args(tmp_path, tiny_bert_dir, glue_dir, steps=2)
    with caplog.at_level(logging.INFO):
        LoraPlusCLI(args=["fit", *args, "--ckpt_path=auto"])
    assert f"--ckpt_path auto: no last.ckpt in ['{tmp_path / 'checkpoints'}']: starting a new run" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        cli = LoraPlusCLI(args=["fit", *args, "--ckpt_path=auto"])
    assert f"--ckpt_path auto: resuming from {tmp_path / 'checkpoints' / 'last.ckpt'}" in caplog.text
    assert cli.trainer.global_step == 2


def test_ckpt_path_auto_is_for_fit_only(tmp_path, tiny_bert_dir, glue_dir) -> None:
    """`validate --ckpt_path auto` is refused: evaluation needs a definite checkpoint."""
    with pytest.raises(ConfigError, match=r"`--ckpt_path auto` resumes a `fit`.*`validate` needs a definite"):
        LoraPlusCLI(args=["validate", *cli_args(tmp_path, tiny_bert_dir, glue_dir, 2), "--ckpt_path=auto"])


@pytest.mark.subprocess
def test_sigterm_from_the_command_line_exits_75_and_resumes_exactly(tmp_path, reference_run, cli_process) -> None:
    """`lit-loraplus fit` sent SIGTERM at the start of step 6: it finishes step 6, writes last.ckpt (step 7), exits
    with 75; the same command with `--ckpt_path auto` continues and ends bit-identical to the uninterrupted run."""
    args = reference_run.args(tmp_path)
    stopped = cli_process(tmp_path, *args, "--trainer.callbacks+=recorder.SignalAtStep", "--trainer.callbacks.step=6")
    assert stopped.returncode == PREEMPTED_EXIT_CODE, stopped.stderr[-3000:]
    assert "SIGTERM received: stopping at the end of this optimizer step" in stopped.stderr
    assert torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["global_step"] == 7
    resumed = cli_process(tmp_path, *args, "--ckpt_path=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference_run.assert_resumed_as_reference(tmp_path, resumed_from=7)
